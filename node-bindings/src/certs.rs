//! `createCertificates`: a new cluster CA and certificates of it, made in
//! memory with the same code as `canhazdb cert` (`canhazdb::tls::certs`),
//! for tests and development setups that want mutual TLS without files.

use canhazdb::tls::certs::{Authority, CertError, LeafSpec};
use napi::Env;
use napi_derive::napi;
use std::time::{Duration, SystemTime};

use crate::error::Failure;

/// How long the CA of `createCertificates` is valid (its leaves are valid
/// for five years, as with `canhazdb cert`).
const CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 60 * 60);
/// Clock-skew slack: the CA is valid from an hour ago.
const BACKDATE: Duration = Duration::from_secs(60 * 60);

/// Options of `createCertificates` (all optional).
#[napi(object)]
pub struct CertificateOptions {
    /// Host names and IP addresses the node certificate is valid for.
    /// Default `["127.0.0.1", "localhost"]`.
    pub hosts: Option<Vec<String>>,
    /// Common names of the client certificates to issue. Default `["client"]`.
    pub clients: Option<Vec<String>>,
}

/// A certificate and its private key, both PEM.
#[napi(object)]
pub struct IssuedCertificate {
    /// The certificate's common name (`"node"` for the node certificate).
    pub name: String,
    pub cert: String,
    pub key: String,
}

/// What `createCertificates` made.
#[napi(object)]
pub struct Certificates {
    /// The CA certificate (PEM): the `ca` of servers and clients.
    pub ca: String,
    /// The CA's private key (PEM). Keep it secret; tests can drop it.
    pub ca_key: String,
    /// A node certificate (CN `node`) for `createServer({ tls })` or a server's `--certs-dir`.
    pub node: IssuedCertificate,
    /// One client certificate per name in `options.clients`, in order.
    pub clients: Vec<IssuedCertificate>,
}

/// Makes a new CA and, signed by it, a node certificate and client
/// certificates, in memory (nothing is written). The certificates are the
/// same as `canhazdb cert create-ca / create-node / create-client` write.
///
/// ```js
/// const certs = createCertificates({ clients: ['app'] })
/// const server = await createServer({ port: 0, tls: { ca: certs.ca, cert: certs.node.cert, key: certs.node.key } })
/// const client = await createClient({ port: server.port, ca: certs.ca, ...certs.clients[0] })
/// ```
#[napi]
pub fn create_certificates(env: &Env, options: Option<CertificateOptions>) -> napi::Result<Certificates> {
    make(options).map_err(|failure| failure.into_napi(env))
}

fn make(options: Option<CertificateOptions>) -> Result<Certificates, Failure> {
    let (hosts, clients) = match options {
        Some(options) => (options.hosts, options.clients),
        None => (None, None),
    };
    let hosts = hosts.unwrap_or_else(|| vec!["127.0.0.1".to_owned(), "localhost".to_owned()]);
    let clients = clients.unwrap_or_else(|| vec!["client".to_owned()]);
    if let Some(name) = clients
        .iter()
        .find(|name| name.is_empty() || name.as_str() == "node")
    {
        return Err(Failure::argument(format!(
            "client name {name:?} is not allowed: a client certificate needs a name, and \"node\" is the node's"
        )));
    }
    let now = SystemTime::now();
    let authority = Authority::generate(now - BACKDATE, now + CA_VALIDITY).map_err(failure)?;
    let issue = |name: &str, spec: LeafSpec| {
        authority
            .issue(&spec)
            .map_err(failure)
            .map(|issued| IssuedCertificate {
                name: name.to_owned(),
                cert: issued.cert_pem,
                key: issued.key_pem,
            })
    };
    let node = issue("node", LeafSpec::node(&hosts))?;
    let clients = clients
        .iter()
        .map(|name| issue(name, LeafSpec::client(name)))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Certificates {
        ca: authority.cert_pem().to_owned(),
        ca_key: authority.key_pem(),
        node,
        clients,
    })
}

fn failure(error: CertError) -> Failure {
    match error {
        CertError::BadName { .. } | CertError::BadHost { .. } => Failure::argument(error.to_string()),
        other => Failure::tls(other.to_string()),
    }
}
