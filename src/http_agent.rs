//! Where every HTTP agent of the connectors starts, so that TLS trust is decided in one place.
//! Certificate checks are always on. A connection's `trust_certificate` adds the certificates
//! of one PEM file (the local sandbox's, typically) as roots beside the public ones (Mozilla's
//! set, which ureq trusts by default); nothing here can turn verification off. Without the `tls`
//! feature the build has no HTTPS at all, so naming a certificate is refused with the way out.
//! A refused server certificate is told apart from a lost connection: trying again cannot help,
//! and the message says which setting would.

use std::path::Path;

use ureq::config::ConfigBuilder;
use ureq::typestate::AgentScope;

/// An agent configuration that trusts the public roots and, when `trust_certificate` names a
/// PEM file, its certificates too. `setting` names the key in `etl.yaml` for errors, e.g.
/// `connections.salesforce.trust_certificate`. Callers add their own timeouts and build.
pub fn config(
    trust_certificate: Option<&str>,
    setting: &str,
) -> Result<ConfigBuilder<AgentScope>, String> {
    let builder = ureq::Agent::config_builder();
    match trust_certificate.map(str::trim).filter(|p| !p.is_empty()) {
        None => Ok(builder),
        Some(path) => trusting(builder, Path::new(path), setting),
    }
}

#[cfg(feature = "tls")]
fn trusting(
    builder: ConfigBuilder<AgentScope>,
    path: &Path,
    setting: &str,
) -> Result<ConfigBuilder<AgentScope>, String> {
    use std::sync::Arc;
    use ureq::tls::{Certificate, RootCerts, TlsConfig};

    let extra = read_certificates(path).map_err(|problem| format!("{setting}: {problem}"))?;
    // ureq takes one list of roots: the public ones it would have used, plus the extra ones.
    let mut roots: Vec<Certificate<'static>> = webpki_root_certs::TLS_SERVER_ROOT_CERTS
        .iter()
        .map(|der| Certificate::from_der(der.as_ref()).to_owned())
        .collect();
    roots.extend(
        extra
            .iter()
            .map(|der| Certificate::from_der(der.as_ref()).to_owned()),
    );
    let tls = TlsConfig::builder()
        .root_certs(RootCerts::Specific(Arc::new(roots)))
        .build();
    Ok(builder.tls_config(tls))
}

#[cfg(not(feature = "tls"))]
fn trusting(
    _builder: ConfigBuilder<AgentScope>,
    path: &Path,
    setting: &str,
) -> Result<ConfigBuilder<AgentScope>, String> {
    Err(format!("{setting}: {}", no_tls(path)))
}

#[cfg(not(feature = "tls"))]
fn no_tls(path: &Path) -> String {
    format!(
        "{} cannot be trusted: this build of etl has no HTTPS; build it with \
         `cargo build --features tls`",
        path.display()
    )
}

/// Whether the file can be trusted as `trust_certificate` says, for `etl validate`: readable,
/// PEM, every certificate usable as a root (and a build that has HTTPS at all).
pub fn check_trusted(path: &Path) -> Result<(), String> {
    #[cfg(feature = "tls")]
    return read_certificates(path).map(|_| ());
    #[cfg(not(feature = "tls"))]
    Err(no_tls(path))
}

/// The certificates of a PEM file, each checked to be one rustls can use as a root (rustls
/// would otherwise skip a broken one silently and the connection fail later, less clearly).
#[cfg(feature = "tls")]
pub fn read_certificates(
    path: &Path,
) -> Result<Vec<tokio_rustls::rustls::pki_types::CertificateDer<'static>>, String> {
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    use tokio_rustls::rustls::pki_types::CertificateDer;
    use tokio_rustls::rustls::RootCertStore;

    let bytes =
        std::fs::read(path).map_err(|error| format!("cannot read {}: {error}", path.display()))?;
    let mut certificates = Vec::new();
    for item in CertificateDer::pem_slice_iter(&bytes) {
        let certificate = item.map_err(|error| {
            format!("{} is not a PEM certificate file: {error}", path.display())
        })?;
        RootCertStore::empty()
            .add(certificate.clone())
            .map_err(|error| {
                format!(
                    "{}: certificate {} cannot be trusted as a root: {error}",
                    path.display(),
                    certificates.len() + 1
                )
            })?;
        certificates.push(certificate);
    }
    if certificates.is_empty() {
        return Err(format!(
            "{} holds no certificate (expected a PEM block `-----BEGIN CERTIFICATE-----`)",
            path.display()
        ));
    }
    Ok(certificates)
}

/// When the request failed because the server's certificate was refused, what to tell the
/// person running `etl` (the check's own words and the setting that would help); `None` for
/// any other failure.
pub fn certificate_refusal(error: &ureq::Error) -> Option<String> {
    refused_certificate(error).map(|reason| {
        format!(
            "the server's TLS certificate is not trusted ({reason}); for the local sandbox's \
             self-signed certificate set `trust_certificate` on this connection in etl.yaml \
             (certificate checks are never turned off)"
        )
    })
}

#[cfg(feature = "tls")]
fn refused_certificate(error: &ureq::Error) -> Option<String> {
    use tokio_rustls::rustls::Error as TlsError;

    let tls = match error {
        ureq::Error::Rustls(tls) => tls,
        // rustls reports a failed handshake through the socket, as an io::Error around it.
        ureq::Error::Io(io) => io.get_ref()?.downcast_ref::<TlsError>()?,
        _ => return None,
    };
    match tls {
        TlsError::InvalidCertificate(reason) => Some(format!("{reason:?}")),
        TlsError::NoCertificatesPresented => Some("the server sent no certificate".into()),
        _ => None,
    }
}

#[cfg(not(feature = "tls"))]
fn refused_certificate(_error: &ureq::Error) -> Option<String> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_certificate_means_the_default_roots() {
        assert!(config(None, "x").is_ok());
        assert!(config(Some("  "), "x").is_ok());
    }

    #[cfg(not(feature = "tls"))]
    #[test]
    fn without_tls_a_certificate_asks_for_the_feature() {
        let error = config(
            Some("sandbox-cert.pem"),
            "connections.halo.trust_certificate",
        )
        .err()
        .unwrap();
        assert!(
            error.contains("connections.halo.trust_certificate")
                && error.contains("sandbox-cert.pem")
                && error.contains("--features tls"),
            "{error}"
        );
    }
}
