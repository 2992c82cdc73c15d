//! Names of host-routed requests for logs and metrics.
//!
//! A host-routed request is named `aws:<service>`, and the name labels metrics
//! series. The client chooses the Host, and any label before the region of an
//! AWS endpoint host reads as a service, so one table names at most
//! [`MAX_HOST_ROUTE_NAMES`] services; requests for further services share the
//! name `aws:other`. Each name is made once and shared.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// How many distinct `aws:<service>` names one route table hands out.
pub const MAX_HOST_ROUTE_NAMES: usize = 100;

/// The name requests past [`MAX_HOST_ROUTE_NAMES`] services share.
pub const OTHER_HOST_ROUTE: &str = "aws:other";

/// The `aws:<service>` names one route table has handed out.
#[derive(Debug)]
pub(crate) struct HostRouteNames {
    names: RwLock<HashMap<Box<str>, Arc<str>, foldhash::fast::RandomState>>,
    other: Arc<str>,
}

impl Default for HostRouteNames {
    fn default() -> Self {
        Self {
            names: RwLock::default(),
            other: Arc::from(OTHER_HOST_ROUTE),
        }
    }
}

impl HostRouteNames {
    /// The name for requests host-routed to `service`.
    pub(crate) fn name(&self, service: &str) -> Arc<str> {
        if let Ok(names) = self.names.read() {
            if let Some(name) = names.get(service) {
                return name.clone();
            }
        }
        let Ok(mut names) = self.names.write() else {
            return self.other.clone();
        };
        if let Some(name) = names.get(service) {
            return name.clone();
        }
        if names.len() >= MAX_HOST_ROUTE_NAMES {
            return self.other.clone();
        }
        let name: Arc<str> = format!("aws:{service}").into();
        names.insert(service.into(), name.clone());
        name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_each_service_once_and_bounds_how_many() {
        let names = HostRouteNames::default();
        let sqs = names.name("sqs");
        assert_eq!(&*sqs, "aws:sqs");
        assert!(Arc::ptr_eq(&sqs, &names.name("sqs")));
        let made: std::collections::HashSet<String> = (0..1_000)
            .map(|i| names.name(&format!("svc{i}")).to_string())
            .collect();
        // 99 more services got their own name; the other 901 share one.
        assert_eq!(made.len(), MAX_HOST_ROUTE_NAMES);
        assert!(made.contains(OTHER_HOST_ROUTE));
        assert_eq!(&*names.name("svc999"), OTHER_HOST_ROUTE);
        // A service named before the bound keeps its name.
        assert_eq!(&*names.name("sqs"), "aws:sqs");
        assert_eq!(&*names.name("svc0"), "aws:svc0");
    }
}
