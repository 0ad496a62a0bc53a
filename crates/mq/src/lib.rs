//! RabbitMQ adapter: declares the platform's topology, publishes outbox messages with
//! publisher confirms ([`AmqpPublisher`]) and drives message handlers from the queues with
//! manual acknowledgements, retries and dead-lettering ([`AmqpConsumer`]).
//!
//! See the crate README for the topology and the delivery guarantees.

mod admin;
mod config;
mod connect;
mod consumer;
mod error;
mod publisher;
mod settings;
mod topology;

pub use admin::MqAdmin;
pub use config::MqConfig;
pub use consumer::AmqpConsumer;
pub use error::MqError;
pub use publisher::AmqpPublisher;
pub use settings::AmqpConfig;
pub use topology::Topology;
