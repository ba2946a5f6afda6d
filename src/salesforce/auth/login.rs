//! `etl auth login salesforce`: the OAuth web-server flow on this machine. Binds a listener on
//! the `redirect_uri`'s port before showing the authorize URL (so the redirect can never arrive
//! first), opens a browser or prints the URL, accepts exactly one callback on the redirect path,
//! checks `state`, exchanges the code (with the PKCE verifier unless `pkce: false`) and stores
//! the tokens.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use super::flows::{self, Pkce};
use super::store::{StoredTokens, TokenStore};
use crate::config::model::{SalesforceConnection, SalesforceFlow};
use crate::salesforce::{random, Error};

/// How the authorize URL reaches the person signing in.
pub struct LoginOptions {
    /// Try to open the system browser (the URL is printed either way).
    pub open_browser: bool,
    /// How long to wait for the callback.
    pub timeout: Duration,
}

impl Default for LoginOptions {
    fn default() -> Self {
        LoginOptions {
            open_browser: true,
            timeout: Duration::from_secs(300),
        }
    }
}

/// Host, port and path of an `http://localhost:port/path` callback.
fn callback_address(redirect_uri: &str) -> Result<(String, u16, String), Error> {
    let bad = |why: &str| {
        Error::Config(format!(
            "redirect_uri {redirect_uri}: {why}; `etl auth login` listens on it, so it must look like http://localhost:1717/oauth/callback"
        ))
    };
    let rest = redirect_uri
        .strip_prefix("http://")
        .ok_or_else(|| bad("not an http:// URL"))?;
    let (authority, path) = match rest.find('/') {
        Some(at) => (&rest[..at], &rest[at..]),
        None => (rest, "/"),
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) => (host, port.parse::<u16>().map_err(|_| bad("bad port"))?),
        None => (authority, 80),
    };
    if !matches!(host, "localhost" | "127.0.0.1") {
        return Err(bad("the host is not this machine"));
    }
    Ok(("127.0.0.1".into(), port, path.to_string()))
}

/// Runs the whole flow. `show` receives the authorize URL (the CLI prints it; a test follows it).
pub fn login(
    connection: &SalesforceConnection,
    store: &TokenStore,
    options: &LoginOptions,
    show: impl FnOnce(&str),
) -> Result<StoredTokens, Error> {
    if connection.flow != SalesforceFlow::WebServer {
        return Err(Error::Config(format!(
            "flow {} signs in on every run without a browser: nothing to log in to",
            flows::flow_name(connection.flow)
        )));
    }
    let (host, port, path) = callback_address(&connection.redirect_uri)?;
    let listener = TcpListener::bind((host.as_str(), port)).map_err(|e| Error::Connection {
        url: connection.redirect_uri.clone(),
        detail: format!("cannot listen for the callback on port {port}: {e}"),
    })?;
    let state = random::url_safe_string(32);
    let pkce = connection.pkce.then(Pkce::new);
    let url = flows::authorize_url(connection, &state, pkce.as_ref());
    show(&url);
    if options.open_browser {
        open_browser(&url);
    }
    let params = wait_for_callback(&listener, &path, &state, options.timeout)?;
    let code = params
        .iter()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.clone())
        .ok_or_else(|| Error::Protocol("the callback carries no code".into()))?;
    let granted = flows::exchange_code(
        connection,
        &code,
        pkce.as_ref().map(|p| p.verifier.as_str()),
    )?;
    if granted.refresh_token.is_none() {
        return Err(Error::OAuth {
            error: "no_refresh_token".into(),
            description: "Salesforce issued no refresh token: give the connected app the \
                          `refresh_token` (offline access) scope, and ask for it (`scope` under \
                          connections.salesforce, e.g. `full refresh_token`)"
                .into(),
        });
    }
    let tokens = granted.into_stored(connection);
    store.save(&tokens)?;
    Ok(tokens)
}

/// Best effort: a missing browser is not an error, the URL was printed.
fn open_browser(url: &str) {
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else {
        "xdg-open"
    };
    let _ = std::process::Command::new(opener)
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
}

/// Serves requests until the one on the callback path arrives, answers it, and returns its
/// query parameters once `state` matched. Other paths (a browser's favicon) get a 404.
fn wait_for_callback(
    listener: &TcpListener,
    path: &str,
    state: &str,
    timeout: Duration,
) -> Result<Vec<(String, String)>, Error> {
    listener
        .set_nonblocking(true)
        .map_err(|e| Error::Protocol(e.to_string()))?;
    let deadline = Instant::now() + timeout;
    loop {
        let stream = match listener.accept() {
            Ok((stream, _)) => stream,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if Instant::now() > deadline {
                    return Err(Error::OAuth {
                        error: "timeout".into(),
                        description: format!(
                            "no callback within {} seconds; run `etl auth login salesforce` again",
                            timeout.as_secs()
                        ),
                    });
                }
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
            Err(e) => return Err(Error::Protocol(e.to_string())),
        };
        let _ = stream.set_nonblocking(false);
        let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
        let Some(target) = request_target(&stream) else {
            continue;
        };
        let (request_path, query) = target.split_once('?').unwrap_or((&target, ""));
        if request_path != path {
            respond(stream, "404 Not Found", "Not the sign-in callback.");
            continue;
        }
        let params = parse_query(query);
        let get = |key: &str| {
            params
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_str())
        };
        if get("state") != Some(state) {
            respond(
                stream,
                "400 Bad Request",
                "The sign-in answer does not belong to this login (state mismatch). Run `etl auth login salesforce` again.",
            );
            return Err(Error::OAuth {
                error: "state_mismatch".into(),
                description: "the callback's state is not the one this login sent".into(),
            });
        }
        if let Some(error) = get("error") {
            let description = get("error_description")
                .unwrap_or("no description")
                .to_string();
            respond(
                stream,
                "400 Bad Request",
                &format!("Salesforce refused the sign-in: {error}: {description}"),
            );
            return Err(Error::OAuth {
                error: error.to_string(),
                description,
            });
        }
        respond(
            stream,
            "200 OK",
            "Signed in to Salesforce. You can close this window and return to the terminal.",
        );
        return Ok(params);
    }
}

/// The request target of an HTTP/1 request line (`GET /path?query HTTP/1.1`).
fn request_target(stream: &TcpStream) -> Option<String> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let _method = parts.next()?;
    let target = parts.next()?.to_string();
    // Drain the headers so the browser sees a well-behaved server.
    let mut header = String::new();
    while reader.read_line(&mut header).ok()? > 2 {
        header.clear();
    }
    Some(target)
}

fn respond(mut stream: TcpStream, status: &str, message: &str) {
    let body = format!(
        "<!doctype html><title>etl</title><p>{}</p>",
        message.replace('&', "&amp;").replace('<', "&lt;")
    );
    let _ = write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.flush();
}

fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(k), decode(v))
        })
        .collect()
}

/// Percent-decoding with `+` as space (form encoding).
fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(high), Some(low)) => {
                    out.push(high << 4 | low);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(digit: u8) -> Option<u8> {
    (digit as char).to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
mod tests {
    use super::{callback_address, decode};

    #[test]
    fn reads_the_callback_address() {
        let (host, port, path) = callback_address("http://localhost:1717/oauth/callback").unwrap();
        assert_eq!(
            (host.as_str(), port, path.as_str()),
            ("127.0.0.1", 1717, "/oauth/callback")
        );
        assert!(callback_address("https://example.com/cb").is_err());
        assert!(callback_address("http://example.com:80/cb").is_err());
    }

    #[test]
    fn decodes_percent_and_plus() {
        assert_eq!(decode("aPrx%3D%3D"), "aPrx==");
        assert_eq!(decode("end-user+denied"), "end-user denied");
        assert_eq!(decode("bad%zz"), "bad%zz");
        assert_eq!(decode("trail%4"), "trail%4");
    }
}
