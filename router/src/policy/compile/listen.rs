//! Where the sidecar listens, and how long it drains.

use std::net::SocketAddr;
use std::time::Duration;

use super::super::raw::RawPolicy;
use super::errors::Errors;
use super::types::defaults;
use super::values::duration;

/// The checked listeners; `listen` is `None` when it does not parse (an error is recorded).
pub(super) struct Listeners {
    pub(super) listen: Option<SocketAddr>,
    pub(super) admin_listen: Option<SocketAddr>,
    pub(super) shutdown_grace: Duration,
}

/// Checks `listen`, `admin_listen` and `shutdown_grace`.
pub(super) fn compile_listeners(raw: &RawPolicy, errors: &mut Errors) -> Listeners {
    let listen_text = raw.listen.as_deref().unwrap_or(defaults::LISTEN);
    let listen = listen_text.parse::<SocketAddr>().map_err(|_| {
        errors.push(
            "listen",
            format!("`{listen_text}` is not a socket address like 127.0.0.1:8080"),
        );
    });
    let admin_listen = raw.admin_listen.as_deref().and_then(|text| {
        let addr = text.parse::<SocketAddr>().map_err(|_| {
            errors.push(
                "admin_listen",
                format!("`{text}` is not a socket address like 0.0.0.0:9090"),
            );
        });
        addr.ok()
    });
    if let (Ok(api), Some(admin)) = (&listen, admin_listen) {
        if api == &admin {
            errors.push(
                "admin_listen",
                format!("`{admin}` is also `listen`: the admin listener needs its own address"),
            );
        }
    }
    let shutdown_grace = duration(
        raw.shutdown_grace.as_deref(),
        "shutdown_grace",
        defaults::SHUTDOWN_GRACE,
        errors,
    );
    Listeners {
        listen: listen.ok(),
        admin_listen,
        shutdown_grace,
    }
}
