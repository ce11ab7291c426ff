//! Phase 0 of a run: everything decided before a connection opens. The hub URLs are
//! resolved (nodes), tokens minted, the run id and seed chosen, the worker count and
//! source addresses worked out, and the hub processes to sample named.

use crate::arrivals::Ramp;
use crate::config::RunArgs;
use crate::hubstats::Source;
use crate::nodes::NodeAddr;
use crate::shard::AuthVia;
use crate::soak::GaugeGroup;
use crate::topics::TopicSpace;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

/// What a run was resolved to.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Hub URLs (nodes), in `--hub-url` order.
    pub hub_urls: Vec<String>,
    /// Where workers connect for each node.
    pub nodes: Vec<NodeAddr>,
    /// `http://host:port` of the first node (goose's host).
    pub origin: String,
    /// Soak mode: which hub's gauges to hold against which nodes' subscribers.
    pub gauges: Vec<GaugeGroup>,
    /// Seed for topics, lifetimes and Poisson arrivals.
    pub seed: u64,
    /// Run id carried in every payload.
    pub run_id: String,
    /// Publisher JWT.
    pub pub_jwt: String,
    /// Subscriber credentials, if subscribers authenticate.
    pub sub_creds: Option<(String, AuthVia)>,
    /// The run's topics.
    pub topics: TopicSpace,
    /// Publish duration, seconds.
    pub publish_s: f64,
    /// Subscriber arrivals after publishing starts.
    pub arrivals: Ramp,
    /// Initial subscribers plus scheduled arrivals.
    pub total_subs: u64,
    /// Worker processes.
    pub workers: u32,
    /// Source address per worker (`None`: the system's choice).
    pub sources: Vec<Option<IpAddr>>,
    /// Hub processes to sample (pids or metrics URLs).
    pub hub_sources: Vec<Source>,
}

impl Plan {
    /// Resolves `args`.
    pub async fn resolve(args: &RunArgs) -> Result<Self, String> {
        let hub_urls = args.hub_urls();
        let mut nodes: Vec<NodeAddr> = Vec::with_capacity(hub_urls.len());
        let mut origins: Vec<String> = Vec::with_capacity(hub_urls.len());
        for url in &hub_urls {
            let (addr, origin) = node_addr(url).await?;
            nodes.push(addr);
            origins.push(origin);
        }
        let Some(origin) = origins.first().cloned() else {
            return Err("no hub URL (--hub-url / HUB_URL)".into());
        };
        let gauges = match &args.timeseries {
            Some(_) => crate::soak::gauge_groups(
                &if args.hub_gauges_url.is_empty() {
                    origins.iter().map(|o| format!("{o}/metrics")).collect::<Vec<_>>()
                } else {
                    args.hub_gauges_url.clone()
                },
                nodes.len(),
            )?,
            None => Vec::new(),
        };
        let seed = args.seed.unwrap_or_else(crate::clock::unix_now_ns);
        let run_id = format!("{:08x}", crate::topics::uniform_from(seed, 17).to_bits() as u32);
        let pub_jwt = match &args.jwt {
            Some(j) => j.clone(),
            None => crate::jwt::publisher_in(&args.token_style(), &args.jwt_key)?,
        };
        let sub_creds = args.subscriber_credentials()?;
        let topics = TopicSpace {
            base: args.topic_base.trim_end_matches('/').to_string(),
            count: args.topics.max(1),
            dialect: args.dialect,
        };
        let arrivals = Ramp::new(
            args.subscribers_rate_from,
            args.subscribers_rate_to,
            Duration::from_secs_f64(args.injection_duration.max(0.0)),
        );
        let total_subs = args.initial_subscribers + arrivals.total();
        let per = args.max_conns_per_worker.max(1);
        let workers = args
            .workers
            .unwrap_or_else(|| {
                let need = total_subs.div_ceil(per) as u32;
                need.max(if total_subs >= 2000 { 2 } else { 1 })
            })
            .max(1);
        let targets: Vec<SocketAddr> = nodes.iter().map(|n| n.target).collect();
        let sources = source_addrs(&args.source_addrs, &targets, workers, args.source_base)?;
        let hub_sources: Vec<Source> = if args.hub_pid.is_empty() {
            args.hub_metrics_url.iter().map(|u| Source::Metrics(u.clone())).collect()
        } else {
            args.hub_pid.iter().map(|&p| Source::Pid(p)).collect()
        };
        Ok(Self {
            hub_urls,
            nodes,
            origin,
            gauges,
            seed,
            run_id,
            pub_jwt,
            sub_creds,
            topics,
            publish_s: args.publish_seconds(),
            arrivals,
            total_subs,
            workers,
            sources,
            hub_sources,
        })
    }

    /// How many of the requested subscribers worker `w` owns: global indices `g` with
    /// `g % workers == w`, initial ones and arrivals alike.
    pub fn subscribers_of(&self, initial: u64, w: u32) -> u64 {
        let n = u64::from(self.workers.max(1));
        let share = |total: u64| total / n + u64::from(u64::from(w) < total % n);
        share(initial) + share(self.arrivals.total())
    }
}

/// Parses and resolves one hub URL: where workers connect, and its origin.
async fn node_addr(url: &str) -> Result<(NodeAddr, String), String> {
    let uri: hyper::Uri = url.parse().map_err(|e| format!("bad HUB_URL {url}: {e}"))?;
    if uri.scheme_str() != Some("http") {
        return Err(format!(
            "the subscriber swarm speaks plain http:// only (got {url}); point it at the hub's \
             internal http port or a TLS-terminating proxy's backend"
        ));
    }
    let authority = uri.authority().ok_or_else(|| format!("HUB_URL has no host: {url}"))?.clone();
    let port = authority.port_u16().unwrap_or(80);
    let target = resolve(authority.host(), port).await?;
    let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_string();
    Ok((NodeAddr { target, host_header: authority.to_string(), path }, format!("http://{authority}")))
}

async fn resolve(host: &str, port: u16) -> Result<SocketAddr, String> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<SocketAddr> =
        tokio::net::lookup_host((host, port)).await.map_err(|e| format!("cannot resolve {host}: {e}"))?.collect();
    addrs.iter().find(|a| a.is_ipv4()).or(addrs.first()).copied().ok_or_else(|| format!("{host} resolves to nothing"))
}

/// Source address per worker (`None`: let the system choose). `auto` binds loopback
/// addresses only when every hub node is on IPv4 loopback.
fn source_addrs(spec: &str, targets: &[SocketAddr], workers: u32, base: u8) -> Result<Vec<Option<IpAddr>>, String> {
    let all_loopback_v4 =
        !targets.is_empty() && targets.iter().all(|t| matches!(t.ip(), IpAddr::V4(v4) if v4.is_loopback()));
    match spec {
        "none" => Ok(vec![None; workers as usize]),
        "auto" => Ok((0..workers)
            .map(|w| {
                all_loopback_v4.then(|| {
                    // 127.0.0.base+w within 2..=254, wrapping: each holds ~28k source ports.
                    let base = u32::from(base.clamp(2, 254)) - 2;
                    IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + ((base + w) % 253) as u8))
                })
            })
            .collect()),
        list => {
            let parsed: Result<Vec<IpAddr>, _> = list.split(',').map(|s| s.trim().parse::<IpAddr>()).collect();
            let parsed = parsed.map_err(|e| format!("--source-addrs: {e}"))?;
            if parsed.is_empty() {
                return Err("--source-addrs: empty list".into());
            }
            Ok((0..workers as usize).map(|w| Some(parsed[w % parsed.len()])).collect())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_worker_owns_its_share_of_initial_subscribers_and_arrivals() {
        let plan = |workers: u32, arrivals: Ramp| Plan {
            hub_urls: vec![],
            nodes: vec![],
            origin: String::new(),
            gauges: vec![],
            seed: 0,
            run_id: String::new(),
            pub_jwt: String::new(),
            sub_creds: None,
            topics: TopicSpace { base: String::new(), count: 1, dialect: Default::default() },
            publish_s: 0.0,
            arrivals,
            total_subs: 0,
            workers,
            sources: vec![],
            hub_sources: vec![],
        };
        // 10 initial + 5 arrivals over 3 workers: g % 3 == w.
        let p = plan(3, Ramp::constant(1.0, Duration::from_secs(5)));
        assert_eq!([0, 1, 2].map(|w| p.subscribers_of(10, w)), [4 + 2, 3 + 2, 3 + 1]);
        let p = plan(1, Ramp::constant(0.0, Duration::from_secs(5)));
        assert_eq!(p.subscribers_of(7, 0), 7);
    }

    #[test]
    fn source_addresses_only_on_loopback() {
        let lo: SocketAddr = "127.0.0.1:80".parse().unwrap_or_else(|_| unreachable!());
        let far: SocketAddr = "10.0.0.1:80".parse().unwrap_or_else(|_| unreachable!());
        let a = source_addrs("auto", &[lo], 2, 2).unwrap_or_default();
        assert_eq!(
            a,
            vec![Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2))), Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3)))]
        );
        assert_eq!(source_addrs("auto", &[lo, far], 1, 2).unwrap_or_default(), vec![None]);
        assert!(source_addrs("x", &[lo], 1, 2).is_err());
    }
}
