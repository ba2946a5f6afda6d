//! The rules of the project file (`etl.yaml`): the settings each sign-in flow needs,
//! certificates that can be trusted, and secrets read from the environment, not written in the
//! file.

use super::{loc_at, node_at, parse_rate, Step};
use crate::config::diagnostic::{Diagnostic, SourceFile};
use crate::config::model::{HaloConnection, Project, SalesforceConnection, SalesforceFlow};
use crate::config::yaml::Node;

/// Rules for the project file: the settings each sign-in flow needs, and secrets that should
/// come from the environment rather than the file.
pub fn check_project(file: &SourceFile, tree: &Node, project: &Project, out: &mut Vec<Diagnostic>) {
    let sf_path = [Step::Key("connections"), Step::Key("salesforce")];
    if let Some(salesforce) = &project.connections.salesforce {
        check_flow(file, tree, salesforce, out);
        for key in ["client_secret", "password"] {
            literal_secret(file, tree, &[sf_path[0], sf_path[1], Step::Key(key)], out);
        }
    }
    if let Some(HaloConnection { rate_limit, .. }) = &project.connections.halo {
        if let Some(rate) = rate_limit
            .as_deref()
            .map(str::trim)
            .filter(|r| *r != "off" && parse_rate(r).is_none())
        {
            let loc = loc_at(
                tree,
                &[
                    Step::Key("connections"),
                    Step::Key("halo"),
                    Step::Key("rate_limit"),
                ],
            );
            out.push(
                file.error(
                    "rate-limit",
                    loc,
                    format!("`{rate}` is not a request limit"),
                )
                .hint("write REQUESTS/WINDOW, e.g. `300/5m` (hosted Halo's limit), or `off`"),
            );
        }
        literal_secret(
            file,
            tree,
            &[
                Step::Key("connections"),
                Step::Key("halo"),
                Step::Key("client_secret"),
            ],
            out,
        );
    }
    check_trusted_certificates(file, tree, project, out);
}

/// Each connection's `trust_certificate` (already made absolute by the loader) must be a PEM
/// certificate that can be trusted, in a build that has HTTPS.
fn check_trusted_certificates(
    file: &SourceFile,
    tree: &Node,
    project: &Project,
    out: &mut Vec<Diagnostic>,
) {
    let connections = &project.connections;
    let trusted = [
        (
            "salesforce",
            connections
                .salesforce
                .as_ref()
                .and_then(|c| c.trust_certificate.as_deref()),
        ),
        (
            "halo",
            connections
                .halo
                .as_ref()
                .and_then(|c| c.trust_certificate.as_deref()),
        ),
    ];
    for (connection, path) in trusted {
        let Some(path) = path.map(str::trim).filter(|p| !p.is_empty()) else {
            continue;
        };
        if let Err(problem) = crate::http_agent::check_trusted(std::path::Path::new(path)) {
            let loc = loc_at(
                tree,
                &[
                    Step::Key("connections"),
                    Step::Key(connection),
                    Step::Key("trust_certificate"),
                ],
            );
            out.push(file.error("trust-certificate", loc, problem).hint(
                "name a PEM certificate file, relative to etl.yaml, e.g. the `certificate` \
                     that `etl sandbox --tls` prints",
            ));
        }
    }
}

fn check_flow(
    file: &SourceFile,
    tree: &Node,
    salesforce: &SalesforceConnection,
    out: &mut Vec<Diagnostic>,
) {
    let needs: &[(&str, bool)] = match salesforce.flow {
        SalesforceFlow::WebServer => &[],
        SalesforceFlow::ClientCredentials => {
            &[("client_secret", salesforce.client_secret.is_some())]
        }
        SalesforceFlow::JwtBearer => &[
            ("username", salesforce.username.is_some()),
            ("private_key_file", salesforce.private_key_file.is_some()),
        ],
        SalesforceFlow::Password => &[
            ("client_secret", salesforce.client_secret.is_some()),
            ("username", salesforce.username.is_some()),
            ("password", salesforce.password.is_some()),
        ],
    };
    let flow_loc = loc_at(
        tree,
        &[
            Step::Key("connections"),
            Step::Key("salesforce"),
            Step::Key("flow"),
        ],
    );
    // Salesforce takes the client credentials flow only at the org's own My Domain host.
    let generic_login = ["login.salesforce.com", "test.salesforce.com"]
        .iter()
        .any(|host| url_host(&salesforce.login_url).eq_ignore_ascii_case(host));
    if salesforce.flow == SalesforceFlow::ClientCredentials && generic_login {
        let loc = loc_at(
            tree,
            &[
                Step::Key("connections"),
                Step::Key("salesforce"),
                Step::Key("login_url"),
            ],
        );
        out.push(
            file.error(
                "login-url",
                loc,
                format!(
                    "the client credentials flow is refused at {}: Salesforce takes it only at the org's My Domain host",
                    salesforce.login_url
                ),
            )
            .hint("set `login_url` to the org's My Domain URL, e.g. https://yourcompany.my.salesforce.com (Setup → My Domain)"),
        );
    }
    for (key, present) in needs {
        if !present {
            out.push(
                file.error(
                    "missing-key",
                    flow_loc,
                    format!("this sign-in flow needs `{key}` under connections.salesforce"),
                )
                .hint(format!("add `{key}: ${{SF_{}}}`", key.to_ascii_uppercase())),
            );
        }
    }
}

fn literal_secret(file: &SourceFile, tree: &Node, path: &[Step], out: &mut Vec<Diagnostic>) {
    let Some(node) = node_at(tree, path) else {
        return;
    };
    let written = file
        .text
        .get(node.loc.offset..node.loc.offset + node.loc.len)
        .unwrap_or("");
    if !written.contains("${") {
        let system = match path.get(1) {
            Some(Step::Key("salesforce")) => "SF_",
            Some(Step::Key("halo")) => "HALO_",
            _ => "",
        };
        let key = match path.last() {
            Some(Step::Key(key)) => format!("{system}{}", key.to_ascii_uppercase()),
            _ => "SECRET".into(),
        };
        out.push(
            file.error("literal-secret", node.loc, "a secret is written into the file")
                .mask_snippet()
                .hint(format!("read it from the environment instead: ${{{key}}}, and keep the value out of version control"))
                .warning(),
        );
    }
}

/// The host of a URL (`https://login.salesforce.com/` → `login.salesforce.com`).
fn url_host(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let host = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    host.split(':').next().unwrap_or(host)
}
