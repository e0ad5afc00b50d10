//! Pod IPs. Each agent takes a /24 of its own (from its pid, so agents side by side differ). When
//! it may add addresses to the loopback interface (root or CAP_NET_ADMIN), pods get routable
//! addresses in 10.0.0.0/8 that Endpoints accept; otherwise loopback addresses in 127.0.0.0/8,
//! which work for scraping and probes but which the API server refuses in Endpoints.

use std::{collections::BTreeSet, net::Ipv4Addr, process::Command};

/// Hands out pod IPs.
#[derive(Debug)]
pub struct Addresses {
    base: [u8; 3],
    next: u8,
    /// Whether addresses are added to `lo` (and removed when released).
    on_lo: bool,
}

fn ip(args: &[&str]) -> bool {
    Command::new("ip").args(args).output().is_ok_and(|o| {
        o.status.success() || String::from_utf8_lossy(&o.stderr).contains("File exists")
    })
}

impl Addresses {
    /// Probes whether addresses can be added to `lo`.
    pub fn new() -> Self {
        let pid = std::process::id();
        let (b, c) = (64 + ((pid >> 8) % 128) as u8, (pid % 256) as u8);
        let probe = format!("10.{b}.{c}.1/32");
        let on_lo = ip(&["addr", "add", &probe, "dev", "lo"]);
        if on_lo {
            ip(&["addr", "del", &probe, "dev", "lo"]);
        }
        Addresses {
            base: [if on_lo { 10 } else { 127 }, b, c],
            next: 2,
            on_lo,
        }
    }

    /// A free address, ready to listen on.
    pub fn take(&mut self, used: &BTreeSet<Ipv4Addr>) -> Ipv4Addr {
        loop {
            let ip4 = Ipv4Addr::new(self.base[0], self.base[1], self.base[2], self.next);
            self.next = if self.next >= 254 { 2 } else { self.next + 1 };
            if used.contains(&ip4) {
                continue;
            }
            if self.on_lo {
                ip(&["addr", "add", &format!("{ip4}/32"), "dev", "lo"]);
            }
            return ip4;
        }
    }

    /// Gives an address back.
    pub fn release(&self, addr: Ipv4Addr) {
        if self.on_lo {
            ip(&["addr", "del", &format!("{addr}/32"), "dev", "lo"]);
        }
    }
}

impl Default for Addresses {
    fn default() -> Self {
        Self::new()
    }
}
