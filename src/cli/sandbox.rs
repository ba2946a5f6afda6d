//! `etl sandbox`: serve the emulated Salesforce org and Halo instance on localhost until Ctrl-C.

use std::path::PathBuf;
use std::time::Duration;

use crate::config::rules::parse_rate;
use crate::sandbox::faults::FaultPlan;
use crate::sandbox::halo::{self, RateLimit};
use crate::sandbox::salesforce::oauth::JwtCertificate;
use crate::sandbox::salesforce::state::Config;
use crate::sandbox::server::{self, Options};

#[derive(Debug, clap::Args)]
pub struct SandboxArgs {
    /// Folder the org is saved to; a second start sees the same data. Without it the org lives
    /// in memory only.
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Accounts to seed into a fresh org (with their contacts, opportunities, cases, …).
    #[arg(long, default_value_t = 300)]
    pub accounts: u64,
    /// Port of the Salesforce API (0 picks a free one).
    #[arg(long, default_value_t = 0)]
    pub salesforce_port: u16,
    /// Port of the Halo API and its auth server (0 picks a free one).
    #[arg(long, default_value_t = 0)]
    pub halo_port: u16,
    /// Enforce Halo's hosted rate limit: REQUESTS per rolling window, e.g. `300/5m` (Halo's
    /// own), `20/10s`. Off by default, as on a self-hosted instance.
    #[arg(long, value_name = "REQUESTS/WINDOW", value_parser = parse_rate_limit)]
    pub halo_rate_limit: Option<RateLimit>,
    /// Approve OAuth authorize requests without showing the approve page (for scripts).
    #[arg(long)]
    pub auto_approve: bool,
    /// Seconds an access token lives (on both APIs) before calls answer 401.
    #[arg(long, default_value_t = 7200)]
    pub token_lifetime: u64,
    /// API calls allowed per day before REQUEST_LIMIT_EXCEEDED.
    #[arg(long, default_value_t = 1_000_000)]
    pub daily_limit: u64,
    /// The connected app's certificate for the JWT bearer grant: an X.509 certificate PEM (as
    /// uploaded to a Salesforce connected app) or an RSA public key PEM. Without it the
    /// jwt-bearer grant is refused.
    #[arg(long, value_name = "FILE")]
    pub jwt_certificate: Option<PathBuf>,
    /// YAML file of faults to inject (latency, 500/503, limits, row locks, expired sessions,
    /// dropped connections), per route, reproducible with its seed.
    #[arg(long, value_name = "FILE")]
    pub faults: Option<PathBuf>,
    /// Serve both APIs over HTTPS with a self-signed certificate for 127.0.0.1 and localhost,
    /// made in DIR on the first start (`sandbox-cert.pem`) and reused after; the JSON line names
    /// it as `certificate`. Needs --data and a build with `--features tls`.
    #[arg(long)]
    pub tls: bool,
}

pub fn run(args: SandboxArgs) -> i32 {
    if args.tls {
        if !cfg!(feature = "tls") {
            eprintln!("error: {}", server::NO_TLS);
            return 2;
        }
        if args.data.is_none() {
            eprintln!("error: --tls keeps its certificate in the data folder: give --data DIR");
            return 2;
        }
    }
    let faults = match args.faults.as_deref().map(FaultPlan::load).transpose() {
        Ok(plan) => plan,
        Err(message) => {
            eprintln!("error: {message}");
            return 2;
        }
    };
    let jwt_certificate = match args.jwt_certificate.as_deref().map(JwtCertificate::load) {
        None => None,
        Some(Ok(certificate)) => Some(certificate),
        Some(Err(message)) => {
            eprintln!("error: {message}");
            return 2;
        }
    };
    let options = Options {
        faults,
        data_dir: args.data,
        accounts: args.accounts,
        salesforce_port: args.salesforce_port,
        salesforce: Config {
            auto_approve: args.auto_approve,
            token_lifetime: Duration::from_secs(args.token_lifetime),
            daily_limit: args.daily_limit,
            jwt_certificate,
            ..Config::default()
        },
        halo_port: args.halo_port,
        halo: halo::Config {
            token_lifetime: Duration::from_secs(args.token_lifetime),
            rate_limit: args.halo_rate_limit,
            ..halo::Config::default()
        },
        tls: args.tls,
    };
    let running = match server::start(options) {
        Ok(running) => running,
        Err(error) => {
            eprintln!("error: cannot start the sandbox: {error}");
            return 3;
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: {error}");
            return 1;
        }
    };
    // Handlers go in before the JSON line is printed: whoever reads the line may signal at once.
    let stop = runtime.block_on(async { StopSignals::install() });
    println!("{}", running.description());
    runtime.block_on(stop.wait());
    running.stop();
    eprintln!("sandbox stopped");
    0
}

/// `300/5m` → 300 requests per 5 minutes.
fn parse_rate_limit(text: &str) -> Result<RateLimit, String> {
    let (requests, seconds) = parse_rate(text).ok_or("expected REQUESTS/WINDOW, e.g. 300/5m")?;
    Ok(RateLimit {
        requests,
        window: Duration::from_secs(seconds),
    })
}

/// Ctrl-C and (on Unix) SIGTERM, registered up front.
struct StopSignals {
    #[cfg(unix)]
    interrupt: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    terminate: Option<tokio::signal::unix::Signal>,
}

impl StopSignals {
    fn install() -> StopSignals {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            StopSignals {
                interrupt: signal(SignalKind::interrupt()).ok(),
                terminate: signal(SignalKind::terminate()).ok(),
            }
        }
        #[cfg(not(unix))]
        StopSignals {}
    }

    async fn wait(mut self) {
        #[cfg(unix)]
        {
            async fn next(signal: Option<&mut tokio::signal::unix::Signal>) {
                match signal {
                    Some(signal) => {
                        signal.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            }
            tokio::select! {
                _ = next(self.interrupt.as_mut()) => {}
                _ = next(self.terminate.as_mut()) => {}
            }
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    }
}
