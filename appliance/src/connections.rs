//! `rouge show connections`: the flows of every worker, proxied and fastl4 alike, as
//! `tmsh show sys connection` lists them. The control thread numbers a request and
//! wakes the workers; each answers at its next loop turn with rows it builds itself
//! (the only allocation, and only on request), so nothing is shared on the data path.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant as StdInstant};

use rouge_pipelines::fastl4::flow::FlowState as Fastl4State;
use rouge_pipelines::l2l3::L2L3;
use rouge_pipelines::Instant;
use serde_json::{json, Value};

use crate::shared::Shared;

/// How long the control thread waits for the workers' answers.
const ANSWER_WAIT: Duration = Duration::from_secs(2);

/// The rows of one worker (called by the worker on request).
pub fn rows(l2: &L2L3, now: Instant) -> Vec<Value> {
    let mut out: Vec<Value> = l2
        .host()
        .proxy_flows(now)
        .into_iter()
        .map(|f| {
            json!({"kind": "proxy", "virtual": f.virtual_name, "client": f.client.map(|c| c.to_string()),
                   "server": f.server.map(|s| s.to_string()), "snat": f.snat.map(|s| s.to_string()),
                   "state": f.state.as_str(), "age_ms": f.age_ms,
                   "bytes_in": f.bytes_in, "bytes_out": f.bytes_out})
        })
        .collect();
    if let Some(f4) = l2.fastl4() {
        for f in f4.flows().iter() {
            let state = match f.state {
                Fastl4State::Syn => "syn",
                Fastl4State::Established => "established",
                Fastl4State::Closing => "closing",
                Fastl4State::Udp => "udp",
            };
            out.push(
                json!({"kind": "fastl4", "virtual": f.vs.name, "client": f.client.to_string(),
                "server": f.server.to_string(), "snat": f.snat.to_string(), "state": state,
                "age_ms": (now - f.created).as_millis() as u64,
                "bytes_in": f.bytes_in, "bytes_out": f.bytes_out}),
            );
        }
    }
    out
}

/// Asks every running worker for its flows and gathers them (optionally of one
/// virtual server). Fails if a worker does not answer in time.
pub fn gather(s: &Shared, virtual_name: Option<&str>) -> Result<Value, String> {
    if let Some(n) = virtual_name {
        let dp = s.dataplane.load();
        let known =
            dp.standard.iter().any(|v| v.name == n) || dp.fastl4.iter().any(|v| v.name == n);
        if !known {
            return Err(format!(
                "no standard or fastl4 virtual server named `{n}`; `rouge show virtual` lists them"
            ));
        }
    }
    let mut asked = Vec::new();
    for w in s
        .workers
        .iter()
        .filter(|w| w.running.load(Ordering::Acquire))
    {
        let id = w.connections_request.fetch_add(1, Ordering::AcqRel) + 1;
        asked.push((w, id));
    }
    s.wake_workers();
    let deadline = StdInstant::now() + ANSWER_WAIT;
    let mut all = Vec::new();
    for (w, id) in asked {
        let answer: Arc<(u64, Vec<Value>)> = loop {
            let a = w.connections.load_full();
            if a.0 >= id {
                break a;
            }
            if StdInstant::now() >= deadline {
                return Err(format!(
                    "worker {} did not answer within {ANSWER_WAIT:?}",
                    w.id
                ));
            }
            std::thread::sleep(Duration::from_millis(2));
        };
        all.extend(
            answer
                .1
                .iter()
                .filter(|r| virtual_name.is_none_or(|n| r["virtual"] == n))
                .cloned(),
        );
    }
    Ok(Value::Array(all))
}
