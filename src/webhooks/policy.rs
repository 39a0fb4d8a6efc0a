//! Which webhook URLs may be called: LangGraph's `webhooks.url` policy plus the SSRF rules,
//! checked when a request is accepted and again before every attempt.
//!
//! Addresses are checked after resolution (a public name pointing at loopback is refused
//! like the loopback address itself), and the sender connects only to addresses vetted
//! here (see `VettingResolver`). Never call this module's resolver in tests with a name
//! that could leave the machine: the unit tests inject their own resolver.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use url::{Host, Url};

use crate::config::UrlPolicyConfig;

/// Why a URL or address is refused; the text follows LangGraph's where it has one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("Webhook URL too long")]
    TooLong,
    #[error("Invalid webhook URL '{url}': {reason}")]
    Malformed { url: String, reason: String },
    #[error("Invalid webhook hostname '{0}'")]
    MissingHost(String),
    #[error("Webhook must use https")]
    HttpsRequired,
    #[error("Webhook port {0} not allowed")]
    PortNotAllowed(u16),
    #[error("Webhook domain not allowed")]
    DomainNotAllowed,
    #[error(
        "Loopback webhooks (relative URLs and localhost) are disabled: set \
         [webhooks.url] disable_loopback = false to allow them"
    )]
    RelativeRefused,
    #[error("Webhook host blocked: {0}")]
    Blocked(&'static str),
}

/// The URL policy in force, built once from `[webhooks.url]`.
#[derive(Debug, Clone)]
pub struct UrlPolicy {
    allowed_domains: Vec<DomainPattern>,
    allowed_ports: Option<Vec<u16>>,
    require_https: bool,
    max_url_length: usize,
    disable_loopback: bool,
    disable_private_ips: bool,
}

#[derive(Debug, Clone)]
enum DomainPattern {
    Exact(String),
    /// `*.example.com`: subdomains only, not the apex (as LangGraph).
    Subdomains(String),
}

/// Host names that mean this machine whatever DNS says.
const LOCALHOST_NAMES: [&str; 3] = ["localhost", "localhost.localdomain", "host.docker.internal"];
/// Cloud metadata services, refused under every policy.
const METADATA_NAMES: [&str; 4] = [
    "metadata.google.internal",
    "metadata.amazonaws.com",
    "metadata",
    "instance-data",
];
const METADATA_IPS: [IpAddr; 4] = [
    IpAddr::V4(Ipv4Addr::new(169, 254, 169, 254)),
    IpAddr::V4(Ipv4Addr::new(169, 254, 170, 2)),
    IpAddr::V4(Ipv4Addr::new(100, 100, 100, 200)),
    IpAddr::V6(Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254)),
];

impl From<&UrlPolicyConfig> for UrlPolicy {
    fn from(config: &UrlPolicyConfig) -> Self {
        UrlPolicy {
            allowed_domains: config
                .allowed_domains
                .iter()
                .map(|pattern| {
                    let pattern = pattern.trim().to_ascii_lowercase();
                    match pattern.strip_prefix("*.") {
                        Some(base) => DomainPattern::Subdomains(base.to_string()),
                        None => DomainPattern::Exact(pattern),
                    }
                })
                .collect(),
            allowed_ports: config.allowed_ports.clone(),
            require_https: config.require_https,
            max_url_length: config.max_url_length,
            disable_loopback: config.disable_loopback,
            disable_private_ips: config.disable_private_ips,
        }
    }
}

impl Default for UrlPolicy {
    fn default() -> Self {
        UrlPolicy::from(&UrlPolicyConfig::default())
    }
}

/// A URL that passed the checks that need no DNS.
#[derive(Debug, Clone)]
pub struct Target {
    pub url: Url,
    /// The host to resolve, when it is a name (IP literals were checked already).
    pub name: Option<String>,
    pub port: u16,
}

impl UrlPolicy {
    pub fn loopback_allowed(&self) -> bool {
        !self.disable_loopback
    }

    /// Everything but DNS: length, form, scheme, port, domain list, names and IP literals.
    /// `base` resolves relative URLs (the daemon's own address); they are refused unless
    /// loopback is allowed.
    pub fn check_form(&self, raw: &str, base: &Url) -> Result<Target, PolicyError> {
        if raw.len() > self.max_url_length {
            return Err(PolicyError::TooLong);
        }
        let malformed = |reason: String| PolicyError::Malformed {
            url: raw.to_string(),
            reason,
        };
        let url = if raw.starts_with('/') {
            if self.disable_loopback {
                return Err(PolicyError::RelativeRefused);
            }
            base.join(raw).map_err(|err| malformed(err.to_string()))?
        } else {
            Url::parse(raw).map_err(|err| malformed(err.to_string()))?
        };
        if !matches!(url.scheme(), "http" | "https") {
            return Err(malformed(format!(
                "scheme '{}' not allowed (http or https)",
                url.scheme()
            )));
        }
        if self.require_https && url.scheme() != "https" {
            return Err(PolicyError::HttpsRequired);
        }
        let port = url
            .port_or_known_default()
            .ok_or_else(|| malformed("no port".into()))?;
        if let Some(ports) = &self.allowed_ports
            && !ports.contains(&port)
        {
            return Err(PolicyError::PortNotAllowed(port));
        }
        let name = match url.host() {
            None | Some(Host::Domain("")) => return Err(PolicyError::MissingHost(String::new())),
            Some(Host::Domain(domain)) => {
                let domain = domain.trim_end_matches('.').to_ascii_lowercase();
                self.check_domain(&domain)?;
                Some(domain)
            }
            Some(Host::Ipv4(ip)) => {
                self.check_domain(&ip.to_string())?;
                self.check_ip(IpAddr::V4(ip))?;
                None
            }
            Some(Host::Ipv6(ip)) => {
                self.check_domain(&ip.to_string())?;
                self.check_ip(IpAddr::V6(ip))?;
                None
            }
        };
        Ok(Target { url, name, port })
    }

    fn check_domain(&self, host: &str) -> Result<(), PolicyError> {
        if !self.allowed_domains.is_empty()
            && !self.allowed_domains.iter().any(|pattern| match pattern {
                DomainPattern::Exact(exact) => exact == host,
                DomainPattern::Subdomains(base) => host
                    .strip_suffix(base.as_str())
                    .is_some_and(|prefix| prefix.ends_with('.') && prefix.len() > 1),
            })
        {
            return Err(PolicyError::DomainNotAllowed);
        }
        if self.disable_loopback && LOCALHOST_NAMES.contains(&host) {
            return Err(PolicyError::Blocked(
                "localhost address (set [webhooks.url] disable_loopback = false to allow it)",
            ));
        }
        if METADATA_NAMES.contains(&host) {
            return Err(PolicyError::Blocked("cloud metadata endpoint"));
        }
        if host.ends_with(".svc.cluster.local") {
            return Err(PolicyError::Blocked("Kubernetes internal DNS"));
        }
        Ok(())
    }

    /// Whether an address may be connected to. An IPv6 address that carries an IPv4
    /// address (mapped, translated, compatible, NAT64, 6to4, Teredo) is judged by every
    /// IPv4 address it carries, so no IPv6 spelling reaches an IPv4 range that is refused.
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), PolicyError> {
        if METADATA_IPS.contains(&ip) {
            return Err(PolicyError::Blocked("cloud metadata endpoint"));
        }
        match ip {
            IpAddr::V4(v4) => self.check_v4(v4),
            IpAddr::V6(v6) => {
                let carried = embedded_v4(v6);
                if !carried.is_empty() {
                    for v4 in carried {
                        if METADATA_IPS.contains(&IpAddr::V4(v4)) {
                            return Err(PolicyError::Blocked("cloud metadata endpoint"));
                        }
                        self.check_v4(v4)?;
                    }
                    return Ok(());
                }
                let segments = v6.segments();
                if v6.is_unspecified()
                    || v6.is_multicast()
                    || (segments[0] & 0xffc0) == 0xfe80            // link-local
                    || (segments[0] == 0x2001 && segments[1] == 0x0db8) // documentation
                    || (segments[0] == 0x0100 && segments[1..4] == [0, 0, 0]) // discard
                    || (segments[0] == 0x64 && segments[1] == 0xff9b)
                {
                    return Err(PolicyError::Blocked("blocked IP range"));
                }
                if v6.is_loopback() && self.disable_loopback {
                    return Err(PolicyError::Blocked(
                        "loopback IP range (set [webhooks.url] disable_loopback = false to allow it)",
                    ));
                }
                let unique_local = (segments[0] & 0xfe00) == 0xfc00;
                let site_local = (segments[0] & 0xffc0) == 0xfec0; // deprecated, still routed privately
                if (unique_local || site_local) && self.disable_private_ips {
                    return Err(PolicyError::Blocked("private IP range"));
                }
                Ok(())
            }
        }
    }

    fn check_v4(&self, ip: Ipv4Addr) -> Result<(), PolicyError> {
        let [a, b, c, _] = ip.octets();
        let always_blocked = a == 0                       // "this network", incl. 0.0.0.0
            || ip.is_link_local()                         // 169.254/16
            || (a == 192 && b == 0 && (c == 0 || c == 2)) // protocol assignments, TEST-NET-1
            || (a == 198 && (b & 0xfe) == 18)             // benchmarking
            || (a == 198 && b == 51 && c == 100)          // TEST-NET-2
            || (a == 203 && b == 0 && c == 113)           // TEST-NET-3
            || a >= 224; // multicast, reserved, broadcast
        if always_blocked {
            return Err(PolicyError::Blocked("blocked IP range"));
        }
        if ip.is_loopback() && self.disable_loopback {
            return Err(PolicyError::Blocked(
                "loopback IP range (set [webhooks.url] disable_loopback = false to allow it)",
            ));
        }
        let private = ip.is_private() || (a == 100 && (b & 0xc0) == 64);
        if private && self.disable_private_ips {
            return Err(PolicyError::Blocked("private IP range"));
        }
        Ok(())
    }

    /// The full check: form, then every address the name resolves to (any refused address
    /// refuses the URL, so a name cannot smuggle a blocked address in beside a good one).
    pub async fn vet(
        &self,
        raw: &str,
        base: &Url,
        resolver: &dyn Resolver,
    ) -> Result<Target, PolicyError> {
        let target = self.check_form(raw, base)?;
        if let Some(name) = &target.name {
            let addrs = resolver
                .lookup(name, target.port)
                .await
                .map_err(|_| PolicyError::Blocked("DNS resolution failed"))?;
            if addrs.is_empty() {
                return Err(PolicyError::Blocked("DNS resolution failed"));
            }
            for addr in addrs {
                self.check_ip(addr.ip())?;
            }
        }
        Ok(target)
    }
}

/// The IPv4 addresses an IPv6 address carries: mapped (`::ffff:a.b.c.d`), translated
/// (`::ffff:0:a.b.c.d`), compatible (`::a.b.c.d`, deprecated), NAT64 (`64:ff9b::/96` and
/// the local-use `64:ff9b:1::/48`), 6to4 (`2002:AABB:CCDD::/16`) and Teredo (`2001::/32`:
/// its server, and its client stored inverted).
fn embedded_v4(ip: Ipv6Addr) -> Vec<Ipv4Addr> {
    let s = ip.segments();
    let v4 = |high: u16, low: u16| {
        Ipv4Addr::new((high >> 8) as u8, high as u8, (low >> 8) as u8, low as u8)
    };
    let tail = v4(s[6], s[7]);
    if s[..5] == [0, 0, 0, 0, 0] && s[5] == 0xffff {
        return vec![tail]; // mapped
    }
    if s[..4] == [0, 0, 0, 0] && s[4] == 0xffff && s[5] == 0 {
        return vec![tail]; // translated
    }
    if s[..6] == [0, 0, 0, 0, 0, 0] && !ip.is_loopback() && !ip.is_unspecified() {
        return vec![tail]; // compatible
    }
    if s[0] == 0x64 && s[1] == 0xff9b && (s[2..6] == [0, 0, 0, 0] || s[2] == 1) {
        return vec![tail]; // NAT64
    }
    if s[0] == 0x2002 {
        return vec![v4(s[1], s[2])]; // 6to4
    }
    if s[0] == 0x2001 && s[1] == 0 {
        return vec![v4(s[2], s[3]), v4(!s[6], !s[7])]; // Teredo: server, client
    }
    Vec::new()
}

/// Name resolution, injectable so the policy's tests never touch real DNS.
pub trait Resolver: Send + Sync {
    fn lookup<'a>(
        &'a self,
        name: &'a str,
        port: u16,
    ) -> futures_util::future::BoxFuture<'a, std::io::Result<Vec<SocketAddr>>>;
}

/// The system resolver (getaddrinfo: /etc/hosts first, then DNS).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemResolver;

impl Resolver for SystemResolver {
    fn lookup<'a>(
        &'a self,
        name: &'a str,
        port: u16,
    ) -> futures_util::future::BoxFuture<'a, std::io::Result<Vec<SocketAddr>>> {
        Box::pin(async move { Ok(tokio::net::lookup_host((name, port)).await?.collect()) })
    }
}

/// reqwest's resolver for webhook calls: resolves once and hands reqwest only the
/// addresses the policy allows, so the connection goes to exactly a vetted address (no
/// second lookup that DNS rebinding could answer differently).
pub struct VettingResolver {
    pub policy: Arc<UrlPolicy>,
}

impl reqwest::dns::Resolve for VettingResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.policy.clone();
        Box::pin(async move {
            let host = name.as_str().to_string();
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|addr| policy.check_ip(addr.ip()).is_ok())
                .collect();
            if addrs.is_empty() {
                return Err(format!("{host}: no address allowed by the webhook URL policy").into());
            }
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// A resolver answering from a table: no query leaves the process.
    struct Table(HashMap<&'static str, Vec<IpAddr>>);

    impl Resolver for Table {
        fn lookup<'a>(
            &'a self,
            name: &'a str,
            port: u16,
        ) -> futures_util::future::BoxFuture<'a, std::io::Result<Vec<SocketAddr>>> {
            let found = self.0.get(name).map(|ips| {
                ips.iter()
                    .map(|ip| SocketAddr::new(*ip, port))
                    .collect::<Vec<_>>()
            });
            Box::pin(async move {
                found.ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "NXDOMAIN"))
            })
        }
    }

    fn table() -> Table {
        Table(HashMap::from([
            (
                "hooks.example.com",
                vec!["93.184.215.14".parse().expect("ip")],
            ),
            ("rebind.example.com", vec!["127.0.0.1".parse().expect("ip")]),
            (
                "mixed.example.com",
                vec![
                    "93.184.215.14".parse().expect("ip"),
                    "169.254.169.254".parse().expect("ip"),
                ],
            ),
            (
                "intranet.example.com",
                vec!["10.1.2.3".parse().expect("ip")],
            ),
        ]))
    }

    fn base() -> Url {
        Url::parse("http://127.0.0.1:8123/").expect("base")
    }

    fn vet(policy: &UrlPolicy, url: &str) -> Result<Target, PolicyError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        runtime.block_on(policy.vet(url, &base(), &table()))
    }

    fn policy(edit: impl FnOnce(&mut UrlPolicyConfig)) -> UrlPolicy {
        let mut config = UrlPolicyConfig::default();
        edit(&mut config);
        UrlPolicy::from(&config)
    }

    #[test]
    fn default_policy_refuses_every_loopback_spelling() {
        let policy = UrlPolicy::default();
        for url in [
            "http://localhost/hook",
            "http://LOCALHOST./hook",
            "http://127.0.0.1:9/hook",
            "http://127.1/hook",
            "http://2130706433/hook",
            "http://0x7f000001/hook",
            "http://0177.0.0.1/hook",
            "http://[::1]/hook",
            "http://[::ffff:127.0.0.1]/hook",
            "http://[::127.0.0.1]/hook",
            "http://[64:ff9b::127.0.0.1]/hook",
            "http://0.0.0.0/hook",
            "http://[::]/hook",
            "/hook",
            "http://rebind.example.com/hook",
        ] {
            assert!(vet(&policy, url).is_err(), "{url} was allowed");
        }
    }

    #[test]
    fn ipv6_forms_carrying_a_refused_ipv4_address_are_judged_by_it() {
        let blocking = policy(|c| c.disable_private_ips = true);
        for url in [
            "http://[::ffff:0:7f00:1]/",             // IPv4-translated 127.0.0.1
            "http://[2002:7f00:1::]/",               // 6to4 of 127.0.0.1
            "http://[2002:a00:1::1]/",               // 6to4 of 10.0.0.1
            "http://[2001::7f00:1]/",                // Teredo, server 0.0.0.0
            "http://[2001:0:a00:1::1]/",             // Teredo, server 10.0.0.1
            "http://[2001:0:5db8:d70e::80ff:fffe]/", // Teredo, client 127.0.0.1
            "http://[64:ff9b:1::7f00:1]/",           // local-use NAT64 of 127.0.0.1
            "http://[2002:a9fe:a9fe::]/",            // 6to4 of the metadata address
            "http://[fec0::1]/",                     // site-local
            "http://[2001:db8::1]/",                 // documentation
        ] {
            let err = vet(&blocking, url).expect_err(url);
            assert!(matches!(err, PolicyError::Blocked(_)), "{url}: {err}");
        }
        // The same forms carrying a public address pass.
        for url in [
            "http://[2002:5db8:d70e::1]/",           // 6to4 of 93.184.215.14
            "http://[2001:0:5db8:d70e::a247:28f1]/", // Teredo, public server and client
            "http://[::ffff:0:5db8:d70e]/",
        ] {
            assert!(vet(&blocking, url).is_ok(), "{url} refused");
        }
    }

    #[test]
    fn site_local_follows_the_private_switch() {
        assert!(vet(&UrlPolicy::default(), "http://[fec0::1]/").is_ok());
        assert_eq!(
            vet(
                &policy(|c| c.disable_private_ips = true),
                "http://[fec0::1]/"
            )
            .expect_err("site-local"),
            PolicyError::Blocked("private IP range")
        );
    }

    #[test]
    fn a_refused_loopback_names_the_setting_that_allows_it() {
        let err = vet(&UrlPolicy::default(), "http://127.0.0.1:9/").expect_err("loopback");
        assert!(
            err.to_string().contains("disable_loopback = false"),
            "{err}"
        );
    }

    #[test]
    fn metadata_and_link_local_are_refused_under_every_policy() {
        let open = policy(|c| {
            c.disable_loopback = false;
            c.disable_private_ips = false;
        });
        for url in [
            "http://169.254.169.254/latest/meta-data",
            "http://169.254.1.1/",
            "http://[fe80::1]/",
            "http://[fd00:ec2::254]/",
            "http://100.100.100.200/",
            "http://[::ffff:169.254.169.254]/",
            "http://metadata.google.internal/",
            "http://api.default.svc.cluster.local/",
            "http://mixed.example.com/",
            "http://224.0.0.1/",
            "http://255.255.255.255/",
        ] {
            let err = vet(&open, url).expect_err(url);
            assert!(matches!(err, PolicyError::Blocked(_)), "{url}: {err}");
        }
    }

    #[test]
    fn private_ranges_follow_the_switch() {
        let allowing = UrlPolicy::default();
        let blocking = policy(|c| c.disable_private_ips = true);
        for url in [
            "http://10.0.0.1/",
            "http://172.16.5.4/",
            "http://192.168.1.1/",
            "http://100.64.0.1/",
            "http://[fd12::1]/",
            "http://intranet.example.com/",
        ] {
            assert!(vet(&allowing, url).is_ok(), "{url} refused by default");
            assert_eq!(
                vet(&blocking, url).expect_err(url),
                PolicyError::Blocked("private IP range"),
                "{url}"
            );
        }
    }

    #[test]
    fn public_names_and_addresses_pass_and_unknown_names_fail() {
        let policy = UrlPolicy::default();
        let target = vet(&policy, "https://hooks.example.com/x?token=abc").expect("public");
        assert_eq!(target.url.query(), Some("token=abc"));
        assert_eq!(target.port, 443);
        assert!(vet(&policy, "http://93.184.215.14:8080/").is_ok());
        assert_eq!(
            vet(&policy, "https://nowhere.example.com/").expect_err("nxdomain"),
            PolicyError::Blocked("DNS resolution failed")
        );
    }

    #[test]
    fn loopback_opens_with_the_switch_and_relative_urls_join_the_base() {
        let open = policy(|c| c.disable_loopback = false);
        assert!(vet(&open, "http://127.0.0.1:9/hook").is_ok());
        assert!(
            vet(&open, "http://localhost:9/hook").is_err(),
            "localhost is not in the table"
        );
        let relative = vet(&open, "/hook?x=1").expect("relative");
        assert_eq!(relative.url.as_str(), "http://127.0.0.1:8123/hook?x=1");
    }

    #[test]
    fn form_rules() {
        let strict = policy(|c| {
            c.require_https = true;
            c.allowed_ports = Some(vec![443, 8443]);
            c.allowed_domains = vec!["hooks.example.com".into(), "*.example.org".into()];
            c.max_url_length = 64;
        });
        assert!(vet(&strict, "https://hooks.example.com/").is_ok());
        assert_eq!(
            vet(&strict, "http://hooks.example.com/").expect_err("http"),
            PolicyError::HttpsRequired
        );
        assert_eq!(
            vet(&strict, "https://hooks.example.com:444/").expect_err("port"),
            PolicyError::PortNotAllowed(444)
        );
        assert_eq!(
            vet(&strict, "https://other.example.com/").expect_err("domain"),
            PolicyError::DomainNotAllowed
        );
        assert_eq!(
            vet(&strict, "https://example.org/").expect_err("apex"),
            PolicyError::DomainNotAllowed
        );
        assert_eq!(
            vet(
                &strict,
                &format!("https://hooks.example.com/{}", "a".repeat(64))
            )
            .expect_err("long"),
            PolicyError::TooLong
        );
        let plain = UrlPolicy::default();
        assert!(matches!(
            vet(&plain, "ftp://hooks.example.com/"),
            Err(PolicyError::Malformed { .. })
        ));
        assert!(matches!(
            vet(&plain, "not a url"),
            Err(PolicyError::Malformed { .. })
        ));
        assert!(vet(&plain, "http:///nohost").is_err());
    }
}
