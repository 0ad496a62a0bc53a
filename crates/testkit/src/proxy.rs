//! A loopback TCP proxy with fault switches.
//!
//! Fault tests point a client at the proxy instead of the shared service and
//! then cut the proxy: the client sees the service "go away" while the real
//! MariaDB / Redis / RabbitMQ keeps serving every other test.

use std::fmt;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{ReadHalf, WriteHalf};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::runtime::Handle;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use crate::service::Service;

/// Upper bound for [`TcpProxy::cut`] waiting on its connection tasks, so a
/// misbehaving peer can never hang a test.
const CUT_WAIT: Duration = Duration::from_secs(5);
const BUF_SIZE: usize = 16 * 1024;

/// Forwards every connection accepted on `127.0.0.1:<random port>` to a
/// target address, byte for byte, in both directions.
///
/// Fault switches:
/// * [`cut`](Self::cut): reset every live connection and refuse new ones
///   (the port is closed, so clients get "connection refused");
/// * [`restore`](Self::restore): listen on the same port again;
/// * [`cut_after`](Self::cut_after): let N more client bytes through, then cut
///   in the middle of the traffic (e.g. inside a MySQL `COMMIT` packet);
/// * [`pause`](Self::pause): hold every byte in both directions, connections
///   open, until [`resume`](Self::resume) delivers them (a stalled server);
/// * [`black_hole`](Self::black_hole): drop every byte in both directions,
///   connections open (a half-open network path);
/// * [`drop_replies`](Self::drop_replies): forward what clients send, drop
///   what the target answers (a request that arrives but whose answer is lost).
///
/// Dropping the proxy closes its port and resets its connections.
pub struct TcpProxy {
    inner: Arc<Inner>,
}

struct Inner {
    addr: SocketAddr,
    target: SocketAddr,
    // Kept so `restore` and `Drop` work from any thread, inside a runtime or not.
    runtime: Handle,
    state: Mutex<State>,
    // Bumped by every cut; connection tasks watch it to know when to die.
    kill: watch::Sender<u64>,
    // Bytes from clients still allowed before an armed `cut_after` fires.
    budget: Mutex<Option<usize>>,
    live: AtomicUsize,
    accepted: AtomicUsize,
    live_changed: Notify,
    flow: watch::Sender<Flow>,
}

/// How bytes pass through live connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    Open,
    Paused,
    BlackHole,
    DropReplies,
}

/// What to do with bytes just read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    FromClient,
    FromTarget,
}

#[derive(Default)]
struct State {
    accept_task: Option<JoinHandle<()>>,
    // An aborted accept task whose listener may not be closed yet.
    stopping: Option<JoinHandle<()>>,
    cut: bool,
    closed: bool,
}

impl TcpProxy {
    /// Starts a proxy on `127.0.0.1:0` forwarding to `target`.
    ///
    /// The target is connected lazily, once per accepted client, so a proxy
    /// can be started before its target is up.
    pub async fn start(target: SocketAddr) -> io::Result<TcpProxy> {
        // The tasks need a tokio runtime; report a foreign executor as an
        // error instead of panicking.
        let runtime = Handle::try_current().map_err(io::Error::other)?;
        let listener = bind_listener(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))?;
        let addr = listener.local_addr()?;
        let (kill, _) = watch::channel(0);
        let inner = Arc::new(Inner {
            addr,
            target,
            runtime,
            state: Mutex::new(State::default()),
            kill,
            budget: Mutex::new(None),
            live: AtomicUsize::new(0),
            accepted: AtomicUsize::new(0),
            live_changed: Notify::new(),
            flow: watch::channel(Flow::Open).0,
        });
        let task = inner
            .runtime
            .spawn(accept_loop(Arc::clone(&inner), listener, 0));
        inner.state().accept_task = Some(task);
        tracing::debug!(%addr, %target, "tcp proxy started");
        Ok(TcpProxy { inner })
    }

    /// Starts a proxy in front of a shared [`Service`] (its URL from the
    /// environment). Pair with [`TcpProxy::proxied_url`].
    pub async fn for_service(service: Service) -> io::Result<TcpProxy> {
        let target = service
            .socket_addr()
            .await
            .map_err(|e| io::Error::new(io::ErrorKind::NotFound, e))?;
        TcpProxy::start(target).await
    }

    /// The address clients should connect to.
    pub fn addr(&self) -> SocketAddr {
        self.inner.addr
    }

    /// The address the proxy forwards to.
    pub fn target(&self) -> SocketAddr {
        self.inner.target
    }

    /// `url` with its host and port replaced by [`TcpProxy::addr`], keeping
    /// credentials, path and query. `None` if `url` is not `scheme://host...`.
    pub fn proxied_url(&self, url: &str) -> Option<String> {
        crate::url::with_addr(url, self.inner.addr)
    }

    /// Number of client connections currently being forwarded.
    pub fn connections(&self) -> usize {
        self.inner.live.load(Ordering::SeqCst)
    }

    /// Number of client connections accepted since the proxy started.
    pub fn accepted(&self) -> usize {
        self.inner.accepted.load(Ordering::SeqCst)
    }

    /// Whether the proxy is currently cut (by [`cut`](Self::cut) or a fired
    /// [`cut_after`](Self::cut_after)).
    pub fn is_cut(&self) -> bool {
        self.inner.state().cut
    }

    /// Waits until exactly `n` connections are live, at most `timeout`.
    /// Returns whether that happened. Accepting is asynchronous, so tests use
    /// this instead of reading [`connections`](Self::connections) right after
    /// a connect.
    pub async fn wait_for_connections(&self, n: usize, timeout: Duration) -> bool {
        tokio::time::timeout(timeout, self.inner.wait_live(|live| live == n))
            .await
            .is_ok()
    }

    /// Resets every live connection (both the client and the target side get
    /// an RST) and closes the listening port, so new connections are refused
    /// until [`restore`](Self::restore).
    ///
    /// When this returns, the port is closed and the connection tasks are
    /// gone (waiting at most a few seconds for them).
    pub async fn cut(&self) {
        self.inner.begin_cut();
        self.inner.finish_stopping().await;
        let _ = tokio::time::timeout(CUT_WAIT, self.inner.wait_live(|live| live == 0)).await;
        tracing::debug!(addr = %self.inner.addr, "tcp proxy cut");
    }

    /// Arms a cut that fires once `bytes_from_client` more bytes (counted over
    /// all client connections together) have been forwarded to the target.
    /// The byte that would exceed the budget is not forwarded; then the proxy
    /// behaves as after [`cut`](Self::cut). `cut_after(0)` cuts as soon as a
    /// client sends anything.
    ///
    /// Typical use: run `BEGIN; INSERT ...` through the proxy, then
    /// `cut_after(3)` and send `COMMIT`: the server receives a torn packet and
    /// a dropped connection, and must roll back.
    pub fn cut_after(&self, bytes_from_client: usize) {
        *lock(&self.inner.budget) = Some(bytes_from_client);
    }

    /// Holds every byte in both directions, leaving connections open, until
    /// [`resume`](Self::resume): the target looks stalled.
    pub fn pause(&self) {
        self.inner.flow.send_replace(Flow::Paused);
    }

    /// Drops every byte in both directions, leaving connections open: packets
    /// vanish, as on a half-open network path. [`resume`](Self::resume) lets
    /// later bytes through; the dropped ones are gone.
    pub fn black_hole(&self) {
        self.inner.flow.send_replace(Flow::BlackHole);
    }

    /// Forwards what clients send but drops what the target answers.
    pub fn drop_replies(&self) {
        self.inner.flow.send_replace(Flow::DropReplies);
    }

    /// Ends [`pause`](Self::pause), [`black_hole`](Self::black_hole) or
    /// [`drop_replies`](Self::drop_replies): held bytes are delivered.
    pub fn resume(&self) {
        self.inner.flow.send_replace(Flow::Open);
    }

    /// Listens on the same port again after a cut. A no-op when not cut.
    ///
    /// # Errors
    ///
    /// When the port cannot be bound again (another process took it in the
    /// meantime) or the proxy is being dropped.
    pub async fn restore(&self) -> io::Result<()> {
        self.inner.finish_stopping().await;
        let mut state = self.inner.state();
        if state.closed {
            return Err(io::Error::other("tcp proxy is shut down"));
        }
        if !state.cut {
            return Ok(());
        }
        let listener = {
            // Registering the socket needs the runtime's reactor.
            let _enter = self.inner.runtime.enter();
            bind_listener(self.inner.addr)?
        };
        let epoch = *self.inner.kill.borrow();
        state.accept_task = Some(self.inner.runtime.spawn(accept_loop(
            Arc::clone(&self.inner),
            listener,
            epoch,
        )));
        state.cut = false;
        tracing::debug!(addr = %self.inner.addr, "tcp proxy restored");
        Ok(())
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.inner.state().closed = true;
        self.inner.begin_cut();
        // The aborted accept task drops its listener when the runtime next
        // polls it; nothing to wait for here (Drop cannot await).
        if let Some(task) = self.inner.state().stopping.take() {
            task.abort();
        }
    }
}

impl fmt::Debug for TcpProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpProxy")
            .field("addr", &self.inner.addr)
            .field("target", &self.inner.target)
            .field("connections", &self.connections())
            .field("cut", &self.is_cut())
            .finish()
    }
}

impl Inner {
    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// The synchronous part of a cut; safe to call from a connection task.
    fn begin_cut(&self) {
        let mut state = self.state();
        state.cut = true;
        *lock(&self.budget) = None;
        // send_modify works without receivers, unlike send.
        self.kill.send_modify(|generation| *generation += 1);
        if let Some(task) = state.accept_task.take() {
            task.abort();
            state.stopping = Some(task);
        }
    }

    /// Waits until an aborted accept task has dropped its listener, so the
    /// port is really closed (or free to bind again).
    async fn finish_stopping(&self) {
        let task = self.state().stopping.take();
        if let Some(task) = task {
            // Cancelled is the expected outcome; a panic there is not ours to
            // propagate into a test's cleanup.
            let _ = task.await;
        }
    }

    async fn wait_live(&self, done: impl Fn(usize) -> bool) {
        loop {
            // Create the Notified before checking, so a change in between is
            // not missed.
            let changed = self.live_changed.notified();
            if done(self.live.load(Ordering::SeqCst)) {
                return;
            }
            changed.await;
        }
    }

    /// Waits while paused; then whether bytes read in `direction` are to be
    /// forwarded (true) or dropped.
    async fn pass(&self, direction: Direction) -> bool {
        let mut flow = self.flow.subscribe();
        loop {
            let now = *flow.borrow_and_update();
            match (now, direction) {
                (Flow::Open, _) | (Flow::DropReplies, Direction::FromClient) => return true,
                (Flow::BlackHole, _) | (Flow::DropReplies, Direction::FromTarget) => return false,
                (Flow::Paused, _) => {
                    if flow.changed().await.is_err() {
                        return true;
                    }
                }
            }
        }
    }

    /// How many of `n` freshly read client bytes may pass, and whether the
    /// armed cut fires after them.
    fn take_budget(&self, n: usize) -> (usize, bool) {
        let mut budget = lock(&self.budget);
        match *budget {
            None => (n, false),
            Some(remaining) if n < remaining => {
                *budget = Some(remaining - n);
                (n, false)
            }
            Some(remaining) => {
                *budget = None;
                (remaining, true)
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding these locks leaves plain data behind; keep going.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn bind_listener(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    // Needed to re-bind the same port on restore while old connections
    // linger in TIME_WAIT.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

/// Decrements the live count however the connection task ends (including
/// being aborted before its first poll).
struct LiveGuard(Arc<Inner>);

impl LiveGuard {
    fn new(inner: Arc<Inner>) -> Self {
        inner.live.fetch_add(1, Ordering::SeqCst);
        inner.accepted.fetch_add(1, Ordering::SeqCst);
        inner.live_changed.notify_waiters();
        LiveGuard(inner)
    }
}

impl Drop for LiveGuard {
    fn drop(&mut self) {
        self.0.live.fetch_sub(1, Ordering::SeqCst);
        self.0.live_changed.notify_waiters();
    }
}

async fn accept_loop(inner: Arc<Inner>, listener: TcpListener, epoch: u64) {
    loop {
        let client = match listener.accept().await {
            Ok((client, _)) => client,
            Err(e) => {
                // Usually EMFILE or a connection reset before accept; back off
                // briefly instead of spinning.
                tracing::debug!(error = %e, "tcp proxy accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let mut kill = inner.kill.subscribe();
        if *kill.borrow_and_update() != epoch {
            // A cut raced with this accept; this task is about to be aborted.
            reset(&client);
            return;
        }
        let guard = LiveGuard::new(Arc::clone(&inner));
        inner
            .runtime
            .spawn(forward(Arc::clone(&inner), client, kill, guard));
    }
}

async fn forward(
    inner: Arc<Inner>,
    mut client: TcpStream,
    mut kill: watch::Receiver<u64>,
    _guard: LiveGuard,
) {
    let connected = tokio::select! {
        r = TcpStream::connect(inner.target) => r,
        _ = kill.changed() => {
            reset(&client);
            return;
        }
    };
    let mut server = match connected {
        Ok(server) => server,
        Err(e) => {
            // The client must see the target as unreachable too.
            tracing::debug!(target = %inner.target, error = %e, "tcp proxy cannot reach target");
            reset(&client);
            return;
        }
    };
    // Small request/response protocols (MySQL, RESP, AMQP) stall under Nagle.
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);

    let killed = {
        let (client_read, client_write) = client.split();
        let (server_read, server_write) = server.split();
        let both = async {
            tokio::try_join!(
                pump_from_client(&inner, client_read, server_write),
                pump(&inner, server_read, client_write),
            )
        };
        tokio::select! {
            _ = both => false,
            _ = kill.changed() => true,
        }
    };
    if killed {
        reset(&client);
        reset(&server);
    }
}

/// Sets SO_LINGER to zero so that dropping the stream sends an RST: the peer
/// sees an abrupt connection loss, as with a crashed server or a cable pull.
fn reset(stream: &TcpStream) {
    let _ = stream.set_zero_linger();
}

async fn pump(inner: &Inner, mut from: ReadHalf<'_>, mut to: WriteHalf<'_>) -> io::Result<()> {
    let mut buf = vec![0u8; BUF_SIZE];
    loop {
        let n = from.read(&mut buf).await?;
        if n == 0 {
            // Half-close: pass the EOF on and keep the other direction open.
            return to.shutdown().await;
        }
        if inner.pass(Direction::FromTarget).await {
            to.write_all(&buf[..n]).await?;
        }
    }
}

async fn pump_from_client(
    inner: &Inner,
    mut from: ReadHalf<'_>,
    mut to: WriteHalf<'_>,
) -> io::Result<()> {
    let mut buf = vec![0u8; BUF_SIZE];
    loop {
        let n = from.read(&mut buf).await?;
        if n == 0 {
            return to.shutdown().await;
        }
        if !inner.pass(Direction::FromClient).await {
            continue;
        }
        let (allowed, fire) = inner.take_budget(n);
        to.write_all(&buf[..allowed]).await?;
        if fire {
            inner.begin_cut();
            // The kill signal now ends this connection with resets; wait for it.
            std::future::pending::<()>().await;
        }
    }
}
