//! Which camera hosts camgate may connect to: `allowed_hosts` and `denied_hosts`.
//!
//! A client's URL is checked when it asks (`allows_request`), and every connection camgate then
//! makes is checked again on the address it is about to connect to (`allows_address`): a
//! camera's redirect, or a name that resolves somewhere unexpected, cannot take camgate to a
//! host the operator never allowed. The address checked is the address connected to, so the
//! answer cannot change in between.

use std::net::IpAddr;

/// One `allowed_hosts` / `denied_hosts` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostRule {
    /// An IP block; a single address is a /32 (/128).
    Net(IpAddr, u8),
    /// A host name, matched case-insensitively; `*.example.com` matches its subdomains.
    Name(String),
}

impl HostRule {
    /// Parses a host name, `*.domain`, an IP address (IPv6 with or without brackets) or a
    /// CIDR block.
    pub fn parse(entry: &str) -> Result<HostRule, String> {
        let entry = entry.trim();
        let bad = || format!("{entry:?} is not a host name, IP address or CIDR");
        if let Some((ip, len)) = entry.split_once('/') {
            let ip: IpAddr = ip.parse().map_err(|_| bad())?;
            let len: u8 = len.parse().map_err(|_| bad())?;
            let max = if ip.is_ipv4() { 32 } else { 128 };
            if len > max {
                return Err(bad());
            }
            return Ok(HostRule::Net(ip, len));
        }
        if let Ok(ip) = entry.trim_matches(['[', ']']).parse::<IpAddr>() {
            return Ok(HostRule::Net(ip, if ip.is_ipv4() { 32 } else { 128 }));
        }
        let name = entry.trim_end_matches('.').to_ascii_lowercase();
        let label_ok =
            |l: &str| !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        let rest = name.strip_prefix("*.").unwrap_or(&name);
        if rest.split('.').all(label_ok) {
            Ok(HostRule::Name(name))
        } else {
            Err(bad())
        }
    }

    /// Whether the URL host `host` (a name or an IP literal, IPv6 with or without brackets)
    /// is this entry.
    pub fn matches(&self, host: &str) -> bool {
        match (self, literal(host)) {
            (HostRule::Net(net, len), Some(ip)) => in_net(ip, *net, *len),
            (HostRule::Net(..), None) | (HostRule::Name(_), Some(_)) => false,
            (HostRule::Name(name), None) => {
                let host = host.trim_end_matches('.').to_ascii_lowercase();
                match name.strip_prefix("*.") {
                    Some(domain) => host
                        .strip_suffix(domain)
                        .is_some_and(|sub| sub.ends_with('.') && sub.len() > 1),
                    None => host == *name,
                }
            }
        }
    }

    fn matches_ip(&self, ip: IpAddr) -> bool {
        matches!(self, HostRule::Net(net, len) if in_net(ip, *net, *len))
    }
}

/// The host as an IP address, if it is a literal.
fn literal(host: &str) -> Option<IpAddr> {
    host.trim_matches(['[', ']']).parse().ok()
}

fn in_net(ip: IpAddr, net: IpAddr, len: u8) -> bool {
    let (ip, net, bits) = match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(b)) => (u32::from(a) as u128, u32::from(b) as u128, 32),
        (IpAddr::V6(a), IpAddr::V6(b)) => (u128::from(a), u128::from(b), 128),
        // An IPv4-mapped IPv6 camera address still matches an IPv4 rule.
        (IpAddr::V6(a), IpAddr::V4(b)) => match a.to_ipv4_mapped() {
            Some(a) => (u32::from(a) as u128, u32::from(b) as u128, 32),
            None => return false,
        },
        (IpAddr::V4(_), IpAddr::V6(_)) => return false,
    };
    let shift = bits - u32::from(len);
    shift >= bits || (ip >> shift) == (net >> shift)
}

/// `allowed_hosts` (empty: any host) and `denied_hosts` (never, whatever the allow list says).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostRules {
    /// Hosts clients may ask for; empty: any.
    pub allow: Vec<HostRule>,
    /// Hosts never connected to for a client (named streams are the operator's own).
    pub deny: Vec<HostRule>,
}

impl HostRules {
    /// No rule at all: every host is allowed.
    pub fn is_open(&self) -> bool {
        self.allow.is_empty() && self.deny.is_empty()
    }

    /// Whether a client may ask for (or a camera redirect to) the URL host `host`. A name is
    /// allowed here by a name entry only; `allows_address` then checks where it leads.
    pub fn allows_request(&self, host: &str) -> bool {
        if self.deny.iter().any(|r| r.matches(host)) {
            return false;
        }
        self.allow.is_empty() || self.allow.iter().any(|r| r.matches(host))
    }

    /// Whether camgate may connect to `ip` for the URL host `host`: not in a denied block,
    /// and in an allowed block unless `host` is a name the allow list names (the operator
    /// trusts that name, wherever it points).
    pub fn allows_address(&self, host: &str, ip: IpAddr) -> bool {
        if self
            .deny
            .iter()
            .any(|r| r.matches_ip(ip) || r.matches(host))
        {
            return false;
        }
        self.allow.is_empty()
            || self.allow.iter().any(|r| r.matches_ip(ip))
            || (literal(host).is_none() && self.allow.iter().any(|r| r.matches(host)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(allow: &[&str], deny: &[&str]) -> HostRules {
        let parse = |l: &[&str]| l.iter().map(|e| HostRule::parse(e).unwrap()).collect();
        HostRules {
            allow: parse(allow),
            deny: parse(deny),
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn entries_parse_and_match() {
        assert!(HostRule::parse("10.0.0.0/33").is_err());
        assert!(HostRule::parse("not a host").is_err());
        assert_eq!(
            HostRule::parse("0.0.0.0/0").unwrap(),
            HostRule::Net(ip("0.0.0.0"), 0)
        );
        assert!(HostRule::parse("0.0.0.0/0").unwrap().matches("8.8.8.8"));
        let wild = HostRule::parse("*.cams.local").unwrap();
        assert!(wild.matches("A.Cams.Local."));
        assert!(!wild.matches("cams.local"));
        assert!(HostRule::parse("[fd00:c::2]")
            .unwrap()
            .matches("[fd00:c::2]"));
    }

    #[test]
    fn a_name_is_judged_by_the_address_it_resolves_to() {
        let r = rules(&["192.0.2.0/24", "cam.example.com"], &["169.254.0.0/16"]);
        // Asking: names only by name entries, literals by blocks.
        assert!(r.allows_request("192.0.2.7"));
        assert!(!r.allows_request("198.51.100.7"));
        assert!(r.allows_request("cam.example.com"));
        assert!(!r.allows_request("other.example.com"));
        // Connecting: an allowed block admits any name that resolves into it...
        assert!(r.allows_address("other.example.com", ip("192.0.2.9")));
        // ...a name outside every block only when the allow list names it...
        assert!(r.allows_address("cam.example.com", ip("203.0.113.5")));
        assert!(!r.allows_address("other.example.com", ip("203.0.113.5")));
        // ...and a denied block never, even for a named host.
        assert!(!r.allows_address("cam.example.com", ip("169.254.169.254")));
        // A literal is its address.
        assert!(!r.allows_address("198.51.100.7", ip("198.51.100.7")));
    }

    #[test]
    fn without_rules_everything_goes_and_a_deny_list_alone_only_denies() {
        assert!(HostRules::default().is_open());
        assert!(HostRules::default().allows_address("x", ip("10.0.0.1")));
        let r = rules(&[], &["169.254.0.0/16", "fd00:ec2::254"]);
        assert!(r.allows_request("anything.example"));
        assert!(!r.allows_request("169.254.169.254"));
        assert!(!r.allows_address("metadata.example", ip("169.254.169.254")));
        assert!(!r.allows_address("x", ip("fd00:ec2::254")));
        assert!(r.allows_address("x", ip("192.0.2.1")));
    }
}
