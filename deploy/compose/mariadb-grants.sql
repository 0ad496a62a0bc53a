-- Run once by the MariaDB image on a new data directory, after it created the user
-- `lottery` (MARIADB_USER): the platform's databases are all named lottery...
-- (`lottery migrate --create-databases` creates them).
GRANT ALL PRIVILEGES ON `lottery%`.* TO 'lottery'@'%';
