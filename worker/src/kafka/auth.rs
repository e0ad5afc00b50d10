//! Authentication and TLS failures of the worker's Kafka clients.
//!
//! librdkafka retries a refused SASL handshake or an unverifiable broker certificate forever and
//! reports it only through the client's error callback, so a worker with wrong credentials would
//! look like a worker waiting for traffic. Every client's context records such a failure here;
//! the worker is not ready before each client has reached its brokers, and a recorded failure
//! stops it with the client and librdkafka's reason named. Stopping is the only cure: a pod's
//! credentials come from the pipeline's Secret as environment variables, which a restart reads
//! again.

use std::sync::{
    Mutex,
    atomic::{AtomicBool, Ordering},
};

use rdkafka::{
    ClientContext,
    consumer::ConsumerContext,
    error::KafkaError,
    types::RDKafkaErrorCode::{
        self, Authentication, IllegalSASLState, PartitionEOF, SSL, SaslAuthenticationFailed,
        UnsupportedSASLMechanism,
    },
};

/// The first authentication or TLS failure any client of the worker reported.
#[derive(Debug, Default)]
pub struct AuthWatch {
    failed: AtomicBool,
    failure: Mutex<Option<String>>,
    /// Once every client reached its brokers, a TLS error is no longer taken as a wrong setting
    /// (an authentication error still is).
    running: AtomicBool,
    /// The last error logged (rdkafka calls a producer's error callback twice per error).
    last_logged: Mutex<String>,
}

/// What kind of failure an error code is, if it is one.
fn kind(code: RDKafkaErrorCode, running: bool) -> Option<&'static str> {
    match code {
        Authentication | SaslAuthenticationFailed | UnsupportedSASLMechanism | IllegalSASLState => {
            Some("authentication failed")
        }
        SSL if !running => Some("TLS handshake failed"),
        _ => None,
    }
}

impl AuthWatch {
    /// Records `error` of `client` if it is an authentication (or, while starting, a TLS)
    /// failure; returns whether it was.
    pub fn record(&self, client: &str, error: &KafkaError, reason: &str) -> bool {
        let Some(kind) = error
            .rdkafka_error_code()
            .and_then(|c| kind(c, self.running.load(Ordering::Acquire)))
        else {
            return false;
        };
        let mut f = self.failure.lock().expect("auth watch lock");
        if f.is_none() {
            *f = Some(format!(
                "Kafka {kind} for the {client}: {reason} (check the client's security.protocol, \
                 sasl.* and ssl.* settings, from the pipeline's Secret)"
            ));
            self.failed.store(true, Ordering::Release);
        }
        true
    }

    /// The recorded failure, if any.
    pub fn failure(&self) -> Option<String> {
        if !self.failed.load(Ordering::Acquire) {
            return None;
        }
        self.failure.lock().expect("auth watch lock").clone()
    }

    /// Every client reached its brokers.
    pub fn set_running(&self) {
        self.running.store(true, Ordering::Release);
    }

    /// The error callback of a client: records and logs (an error repeated at once, once).
    /// A partition's end (the catalog reader asks to be told: it is how it knows it caught up,
    /// and an empty catalog topic reports it at once) is no error: logged at debug.
    pub fn on_error(&self, client: &str, error: KafkaError, reason: &str) {
        if error.rdkafka_error_code() == Some(PartitionEOF) {
            tracing::debug!(client, "librdkafka: {error}: {reason}");
            return;
        }
        let line = format!("{client} {error} {reason}");
        {
            let mut last = self.last_logged.lock().expect("auth watch lock");
            if *last == line {
                return;
            }
            *last = line;
        }
        if self.record(client, &error, reason) {
            tracing::error!(client, error = %error, "{reason}");
        } else {
            tracing::error!(client, "librdkafka: {error}: {reason}");
        }
    }
}

/// The context of a client that needs no callbacks but the error one (the catalog reader).
#[derive(Debug)]
pub struct WatchedContext {
    pub watch: std::sync::Arc<AuthWatch>,
    pub client: &'static str,
}

impl ClientContext for WatchedContext {
    fn error(&self, error: KafkaError, reason: &str) {
        self.watch.on_error(self.client, error, reason);
    }
}

impl ConsumerContext for WatchedContext {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authentication_errors_are_recorded_once_with_the_client_named() {
        let w = AuthWatch::default();
        assert!(!w.record(
            "source consumer",
            &KafkaError::Global(RDKafkaErrorCode::AllBrokersDown),
            "1/1 brokers are down"
        ));
        assert_eq!(
            w.failure(),
            None,
            "an unreachable broker is not a wrong setting"
        );
        assert!(w.record(
            "source consumer",
            &KafkaError::Global(Authentication),
            "SASL authentication error: Authentication failed"
        ));
        assert!(w.record(
            "sink producer",
            &KafkaError::Global(Authentication),
            "again"
        ));
        let f = w.failure().unwrap();
        assert!(
            f.starts_with("Kafka authentication failed for the source consumer: SASL"),
            "{f}"
        );
    }

    #[test]
    fn tls_errors_count_only_while_starting() {
        let w = AuthWatch::default();
        w.set_running();
        assert!(!w.record("sink producer", &KafkaError::Global(SSL), "handshake"));
        assert_eq!(w.failure(), None);
        let w = AuthWatch::default();
        assert!(w.record(
            "sink producer",
            &KafkaError::Global(SSL),
            "certificate verify failed"
        ));
        assert!(w.failure().unwrap().contains("TLS handshake failed"));
    }

    #[test]
    fn a_partition_end_is_logged_at_debug_and_not_recorded() {
        #[derive(Clone, Default)]
        struct Buf(std::sync::Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Buf {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buf = Buf::default();
        let writer = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        let w = AuthWatch::default();
        tracing::subscriber::with_default(subscriber, || {
            w.on_error(
                "catalog reader",
                KafkaError::Global(PartitionEOF),
                "Fetch from broker 1 reached end of partition at offset 0",
            );
            w.on_error(
                "catalog reader",
                KafkaError::Global(RDKafkaErrorCode::AllBrokersDown),
                "1/1 brokers are down",
            );
        });
        assert_eq!(w.failure(), None);
        let log = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = log.lines().collect();
        assert_eq!(lines.len(), 2, "{log}");
        assert!(
            lines[0].contains("DEBUG") && lines[0].contains("end of partition"),
            "{log}"
        );
        assert!(
            lines[1].contains("ERROR") && lines[1].contains("brokers are down"),
            "{log}"
        );
    }
}
