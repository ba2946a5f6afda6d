//! HTTPS for the sandbox (`etl sandbox --tls`, feature `tls`): a self-signed certificate for
//! `127.0.0.1` and `localhost`, generated once into the data folder as PEM (`sandbox-cert.pem`,
//! and `sandbox-key.pem` readable by its owner only) and reused by every later start of the
//! same folder, so a client told to trust it keeps trusting it; and a listener that hands axum
//! connections once their TLS handshake is done. Handshakes run side by side, each with a time
//! limit, so one client that never finishes its handshake holds up nobody else.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::rustls::crypto::ring;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// The certificate's file in the data folder: what clients trust (`trust_certificate`).
pub const CERTIFICATE_FILE: &str = "sandbox-cert.pem";
/// Its private key, beside it.
pub const KEY_FILE: &str = "sandbox-key.pem";

/// The names the certificate is valid for: the sandbox listens on 127.0.0.1 only.
const NAMES: [&str; 2] = ["127.0.0.1", "localhost"];

/// Longest a client may take over its handshake before its connection is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The sandbox's TLS identity: where its certificate is, and the server settings using it.
#[derive(Clone)]
pub struct Identity {
    /// Absolute path of the certificate's PEM file.
    pub certificate: PathBuf,
    pub server: Arc<ServerConfig>,
}

/// The data folder's certificate and key, made first when either is missing. A file that is
/// there but broken is an error naming it, not replaced: clients may already trust it.
pub fn identity(dir: &Path) -> io::Result<Identity> {
    let certificate = std::path::absolute(dir.join(CERTIFICATE_FILE))?;
    let key = dir.join(KEY_FILE);
    if !certificate.exists() || !key.exists() {
        generate(&certificate, &key)?;
    }
    let chain = CertificateDer::pem_file_iter(&certificate)
        .and_then(|items| items.collect::<Result<Vec<_>, _>>())
        .map_err(|error| invalid(&certificate, error))?;
    if chain.is_empty() {
        return Err(invalid(&certificate, "no certificate in it"));
    }
    let private_key = PrivateKeyDer::from_pem_file(&key).map_err(|error| invalid(&key, error))?;
    let mut server = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(io::Error::other)?
        .with_no_client_auth()
        .with_single_cert(chain, private_key)
        .map_err(|error| {
            invalid(
                &certificate,
                format!("does not go with {}: {error}", key.display()),
            )
        })?;
    // The sandbox speaks HTTP/1.1 only.
    server.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Identity {
        certificate,
        server: Arc::new(server),
    })
}

fn invalid(path: &Path, problem: impl std::fmt::Display) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!(
            "{}: {problem} (delete the sandbox's {CERTIFICATE_FILE} and {KEY_FILE} to make new ones)",
            path.display()
        ),
    )
}

/// A new ECDSA P-256 key and a self-signed certificate for [`NAMES`], written as PEM: the key
/// first (owner-only), so a certificate on disk always has its key.
fn generate(certificate: &Path, key: &Path) -> io::Result<()> {
    let names: Vec<String> = NAMES.iter().map(|name| name.to_string()).collect();
    let key_pair = rcgen::KeyPair::generate().map_err(io::Error::other)?;
    let mut params = rcgen::CertificateParams::new(names).map_err(io::Error::other)?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "etl sandbox");
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let signed = params.self_signed(&key_pair).map_err(io::Error::other)?;
    write_private(key, &pem("PRIVATE KEY", &key_pair.serialize_der()))?;
    write_atomically(certificate, &pem("CERTIFICATE", signed.der()), 0o644)
}

/// RFC 7468 text: base64 in lines of 64 between the label's lines.
fn pem(label: &str, der: &[u8]) -> String {
    use base64::Engine;
    let encoded = base64::engine::general_purpose::STANDARD.encode(der);
    let mut text = format!("-----BEGIN {label}-----\n");
    for line in encoded.as_bytes().chunks(64) {
        text.push_str(&String::from_utf8_lossy(line));
        text.push('\n');
    }
    text.push_str(&format!("-----END {label}-----\n"));
    text
}

fn write_private(path: &Path, text: &str) -> io::Result<()> {
    write_atomically(path, text, 0o600)
}

/// Writes through a temporary file created with `mode` (on Unix) and renamed into place.
fn write_atomically(path: &Path, text: &str, mode: u32) -> io::Result<()> {
    use std::io::Write;
    let temporary = path.with_extension("tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options.open(&temporary)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&temporary, path)
}

/// Connections whose TLS handshake is done, for `axum::serve`.
pub struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl TlsListener {
    /// Accepts on `tcp` and runs each handshake in its own task (on the current runtime).
    pub fn new(tcp: TcpListener, server: Arc<ServerConfig>) -> io::Result<TlsListener> {
        let local = tcp.local_addr()?;
        let (ready_tx, ready) = mpsc::channel(64);
        let acceptor = TlsAcceptor::from(server);
        tokio::spawn(async move {
            loop {
                let (stream, peer) = match tcp.accept().await {
                    Ok(accepted) => accepted,
                    // Out of file descriptors and the like: pass, as axum's own listener does.
                    Err(_) => {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                if ready_tx.is_closed() {
                    return;
                }
                let acceptor = acceptor.clone();
                let ready_tx = ready_tx.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let _ = ready_tx.send((tls, peer)).await;
                        }
                        // A client that does not trust the certificate ends here: its own
                        // error says why, so this side only notes it.
                        Ok(Err(error)) => {
                            tracing::debug!(%peer, %error, "sandbox: TLS handshake failed")
                        }
                        Err(_) => tracing::debug!(%peer, "sandbox: TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(TlsListener { ready, local })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(connection) => connection,
            // The accept task is gone (the runtime is stopping): nothing more will come.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.local)
    }
}
