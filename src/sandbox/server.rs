//! Starting and stopping the sandbox: binds the Salesforce and Halo ports on 127.0.0.1 (port 0
//! picks a free one), seeds or loads both systems' data, serves on a background runtime (plain
//! HTTP, or HTTPS with the data folder's certificate, `tls.rs`), saves changes to the data folder
//! every few seconds and on stop. Tests start it in-process; `etl sandbox` wraps it.

use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::oneshot;

use super::faults::{self, FaultPlan, Injector};
use super::halo;
use super::salesforce::http::{lock, SalesforceFaults, Shared};
use super::salesforce::org::Org;
use super::salesforce::state::{Config, State};
use super::salesforce::{api, persist, seed};

/// How to start the sandbox.
#[derive(Debug, Clone)]
pub struct Options {
    /// Folder the org is saved to and loaded from; `None` keeps it in memory.
    pub data_dir: Option<PathBuf>,
    /// Accounts seeded into a fresh org.
    pub accounts: u64,
    pub salesforce_port: u16,
    pub salesforce: Config,
    pub halo_port: u16,
    pub halo: halo::Config,
    /// Faults to inject into responses (both APIs; a rule's route tells them apart:
    /// `/services/*` is Salesforce, `/api/*` and `/auth/*` are Halo).
    pub faults: Option<FaultPlan>,
    /// Serve HTTPS with a self-signed certificate kept in `data_dir` (made on the first start,
    /// reused after). Needs `data_dir` and a build with the `tls` feature.
    pub tls: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            data_dir: None,
            accounts: 300,
            salesforce_port: 0,
            salesforce: Config::default(),
            halo_port: 0,
            halo: halo::Config::default(),
            faults: None,
            tls: false,
        }
    }
}

/// A running sandbox. Dropping it stops it (and saves).
pub struct Running {
    pub salesforce_url: String,
    /// The Halo instance's base URL; its API is under `/api`, its auth server under `/auth`.
    pub halo_url: String,
    /// With `tls`: the certificate's PEM file (absolute), for clients to trust.
    pub certificate: Option<PathBuf>,
    salesforce: Shared,
    halo: halo::state::Shared,
    data_dir: Option<PathBuf>,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

fn build_org(options: &Options) -> std::io::Result<Org> {
    let mut org = Org::new();
    match &options.data_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)?;
            persist::load_custom_fields(&mut org, dir)?;
            if persist::exists(dir) {
                persist::load(&mut org, dir)?;
            } else {
                seed::seed(&mut org, options.accounts);
                persist::save(&org, dir)?;
            }
        }
        None => {
            persist::default_custom_fields(&mut org);
            seed::seed(&mut org, options.accounts);
        }
    }
    Ok(org)
}

fn build_halo(options: &Options, org: &Org) -> std::io::Result<halo::store::Store> {
    if let Some(dir) = &options.data_dir {
        if halo::persist::exists(dir) {
            return halo::persist::load(dir);
        }
    }
    let mut store = halo::store::Store::new();
    halo::seed::seed(&mut store, org);
    if let Some(dir) = &options.data_dir {
        halo::persist::save(&store, dir)?;
    }
    Ok(store)
}

fn bind(port: u16, scheme: &str) -> std::io::Result<(TcpListener, String)> {
    let listener = TcpListener::bind(("127.0.0.1", port))?;
    listener.set_nonblocking(true)?;
    let url = format!("{scheme}://{}", listener.local_addr()?);
    Ok((listener, url))
}

/// The TLS server settings when serving HTTPS (a type with no value in a build without TLS).
#[cfg(feature = "tls")]
type TlsServer = std::sync::Arc<tokio_rustls::rustls::ServerConfig>;
#[cfg(not(feature = "tls"))]
type TlsServer = std::convert::Infallible;

/// The certificate to serve with, when `options.tls` asks for HTTPS.
#[cfg(feature = "tls")]
fn tls_identity(options: &Options) -> std::io::Result<Option<super::tls::Identity>> {
    if !options.tls {
        return Ok(None);
    }
    let dir = options.data_dir.as_deref().ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "HTTPS needs a data folder to keep its certificate in: give --data DIR",
        )
    })?;
    std::fs::create_dir_all(dir)?;
    super::tls::identity(dir).map(Some)
}

/// What a build without the `tls` feature answers to `--tls`.
pub const NO_TLS: &str =
    "HTTPS (--tls) is not in this build of etl: build it with `cargo build --features tls`";

/// Serves `router` on `listener` until `stop` fires, over TLS when `tls` is given.
async fn serve(
    listener: TcpListener,
    router: axum::Router,
    stop: tokio::sync::watch::Receiver<bool>,
    name: &str,
    tls: Option<TlsServer>,
) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("sandbox: {name} cannot listen: {error}");
            return;
        }
    };
    match tls {
        None => serve_on(listener, router, stop, name).await,
        #[cfg(feature = "tls")]
        Some(server) => match super::tls::TlsListener::new(listener, server) {
            Ok(listener) => serve_on(listener, router, stop, name).await,
            Err(error) => eprintln!("sandbox: {name} cannot listen: {error}"),
        },
        #[cfg(not(feature = "tls"))]
        Some(never) => match never {},
    }
}

async fn serve_on<L>(
    listener: L,
    router: axum::Router,
    stop: tokio::sync::watch::Receiver<bool>,
    name: &str,
) where
    L: axum::serve::Listener,
    L::Addr: std::fmt::Debug,
{
    let mut stop = stop;
    let served = axum::serve(listener, router)
        .with_graceful_shutdown(async move {
            let _ = stop.wait_for(|stopped| *stopped).await;
        })
        .await;
    if let Err(error) = served {
        eprintln!("sandbox: {name} stopped: {error}");
    }
}

/// Starts the sandbox and returns once it accepts connections.
pub fn start(options: Options) -> std::io::Result<Running> {
    #[cfg(feature = "tls")]
    let identity = tls_identity(&options)?;
    #[cfg(feature = "tls")]
    let (tls, certificate) = match identity {
        Some(identity) => (Some(identity.server), Some(identity.certificate)),
        None => (None, None),
    };
    #[cfg(not(feature = "tls"))]
    let (tls, certificate): (Option<TlsServer>, Option<PathBuf>) = match options.tls {
        true => return Err(std::io::Error::new(std::io::ErrorKind::Unsupported, NO_TLS)),
        false => (None, None),
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let org = build_org(&options)?;
    let store = build_halo(&options, &org)?;
    let (listener, url) = bind(options.salesforce_port, scheme)?;
    let (halo_listener, halo_url) = bind(options.halo_port, scheme)?;
    let shared: Shared = Arc::new(Mutex::new(State::new(
        options.salesforce.clone(),
        org,
        url.clone(),
    )));
    let halo_shared: halo::state::Shared = Arc::new(Mutex::new(halo::state::State::new(
        options.halo.clone(),
        store,
        halo_url.clone(),
    )));
    let (tx, rx) = oneshot::channel::<()>();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let mut router = api::router(shared.clone());
    let mut halo_router = halo::api::router(halo_shared.clone());
    if let Some(plan) = options.faults.clone() {
        let injector = Injector::new(plan.clone(), Box::new(SalesforceFaults(shared.clone())));
        router = router.layer(axum::middleware::from_fn_with_state(
            injector,
            faults::inject,
        ));
        let injector = Injector::new(plan, Box::new(halo::http::HaloFaults(halo_shared.clone())));
        halo_router = halo_router.layer(axum::middleware::from_fn_with_state(
            injector,
            faults::inject,
        ));
    }
    let saver_state = shared.clone();
    let saver_halo = halo_shared.clone();
    let saver_dir = options.data_dir.clone();
    let thread = std::thread::Builder::new()
        .name("sandbox".into())
        .spawn(move || {
            runtime.block_on(async move {
                if let Some(dir) = saver_dir {
                    tokio::spawn(async move {
                        loop {
                            tokio::time::sleep(Duration::from_secs(2)).await;
                            save_if_dirty(&saver_state, &saver_halo, &dir);
                        }
                    });
                }
                let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
                tokio::spawn(async move {
                    let _ = rx.await;
                    let _ = stop_tx.send(true);
                });
                // Without the `tls` feature its type is `Option<Infallible>`, which is `Copy`.
                #[allow(clippy::clone_on_copy)]
                let salesforce_tls = tls.clone();
                tokio::join!(
                    serve(
                        listener,
                        router,
                        stop_rx.clone(),
                        "Salesforce",
                        salesforce_tls
                    ),
                    serve(halo_listener, halo_router, stop_rx, "Halo", tls),
                );
            });
        })?;
    Ok(Running {
        salesforce_url: url,
        halo_url,
        certificate,
        salesforce: shared,
        halo: halo_shared,
        data_dir: options.data_dir,
        shutdown: Some(tx),
        thread: Some(thread),
    })
}

fn save_if_dirty(shared: &Shared, halo_shared: &halo::state::Shared, dir: &std::path::Path) {
    let mut state = lock(shared);
    if state.dirty {
        match persist::save(&state.org, dir) {
            Ok(()) => state.dirty = false,
            Err(error) => eprintln!("sandbox: cannot save to {}: {error}", dir.display()),
        }
    }
    drop(state);
    let mut state = halo::state::lock(halo_shared);
    if state.dirty {
        match halo::persist::save(&state.store, dir) {
            Ok(()) => state.dirty = false,
            Err(error) => eprintln!("sandbox: cannot save to {}: {error}", dir.display()),
        }
    }
}

impl Running {
    /// The Salesforce org's state, for tests that look inside.
    pub fn salesforce_state(&self) -> Shared {
        self.salesforce.clone()
    }

    /// The Halo instance's state, for tests that look inside.
    pub fn halo_state(&self) -> halo::state::Shared {
        self.halo.clone()
    }

    /// What `etl sandbox` prints: where each API is and the credentials it accepts.
    pub fn description(&self) -> Value {
        let state = lock(&self.salesforce);
        let halo = halo::state::lock(&self.halo);
        let mut salesforce = json!({
            "instance_url": self.salesforce_url,
            "login_url": self.salesforce_url,
            "client_id": state.config.client_id,
            "client_secret": state.config.client_secret,
            "username": state.config.username,
            "password": state.config.password,
            "redirect_uri": state.config.redirect_uri,
        });
        // The JWT bearer grant's certificate (public, so it may be named).
        if let Some(certificate) = &state.config.jwt_certificate {
            salesforce["jwt_certificate"] = Value::String(certificate.file.clone());
        }
        let mut description = json!({
            "salesforce": salesforce,
            "halo": {
                "base_url": self.halo_url,
                "auth_url": format!("{}/auth", self.halo_url),
                "client_id": halo.config.client_id,
                "client_secret": halo.config.client_secret,
                "tenant": halo.config.tenant,
            }
        });
        // Over HTTPS: the certificate both APIs serve, for `trust_certificate`.
        if let Some(certificate) = &self.certificate {
            description["certificate"] = Value::String(certificate.display().to_string());
        }
        description
    }

    /// Stops serving and saves the data folder.
    pub fn stop(mut self) {
        self.shutdown_now();
    }

    fn shutdown_now(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        if let Some(dir) = &self.data_dir {
            save_if_dirty(&self.salesforce, &self.halo, dir);
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.shutdown_now();
    }
}

#[cfg(all(test, not(feature = "tls")))]
mod tests {
    use super::*;

    #[test]
    fn https_without_the_feature_says_how_to_get_it() {
        let error = start(Options {
            tls: true,
            ..Options::default()
        })
        .err()
        .unwrap();
        assert_eq!(error.kind(), std::io::ErrorKind::Unsupported);
        assert!(error.to_string().contains("--features tls"), "{error}");
    }
}
