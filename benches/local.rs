//! Local messaging through nodus against plain ractor, measured in the same run.
//!
//! `cargo bench --bench local` prints one `key=value` line per figure and the ratios
//! (targets: casts ≥ 0.9× ractor, call round trip ≤ 1.1× ractor).
//!
//! Each figure is the median of several rounds, with the ractor baseline and the nodus
//! variants interleaved, and their order alternating from one round to the next, so that
//! machine noise (and a warmer or colder machine) hits both alike. Each ratio is the median
//! of the per-round ratios, each against the baseline measured in the same round.

use std::time::{Duration, Instant};

use nodus::prelude::*;

struct Counter;

enum CounterMsg {
    Add(u64),
    Get(RpcReplyPort<u64>),
}

impl Actor for Counter {
    type Msg = CounterMsg;
    type State = u64;
    type Arguments = ();
    async fn pre_start(&self, _: ActorRef<CounterMsg>, _: ()) -> Result<u64, ActorProcessingErr> {
        Ok(0)
    }
    async fn handle(
        &self,
        _: ActorRef<CounterMsg>,
        msg: CounterMsg,
        n: &mut u64,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            CounterMsg::Add(k) => *n += k,
            CounterMsg::Get(reply) => {
                let _ = reply.send(*n);
            }
        }
        Ok(())
    }
}

const CASTS: u64 = 1_000_000;
const CALLS: u64 = 50_000;
const ROUNDS: usize = 5;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The median of the per-round ratios `num[i] / den[i]`.
fn median_ratio(num: &[f64], den: &[f64]) -> f64 {
    median(num.iter().zip(den).map(|(n, d)| n / d).collect())
}

async fn ractor_casts(actor: &ActorRef<CounterMsg>) -> f64 {
    let start = Instant::now();
    for _ in 0..CASTS {
        actor.cast(CounterMsg::Add(1)).expect("cast");
    }
    actor.call(CounterMsg::Get, None).await.expect("sync");
    CASTS as f64 / start.elapsed().as_secs_f64()
}

async fn nodus_casts(system: &System, dest: &Destination) -> f64 {
    let start = Instant::now();
    for _ in 0..CASTS {
        system.cast(dest, CounterMsg::Add(1)).expect("cast");
    }
    system
        .call(dest, CounterMsg::Get, Duration::from_secs(30))
        .await
        .expect("sync");
    CASTS as f64 / start.elapsed().as_secs_f64()
}

async fn ractor_calls(actor: &ActorRef<CounterMsg>) -> f64 {
    let start = Instant::now();
    for _ in 0..CALLS {
        actor
            .call(CounterMsg::Get, Some(Duration::from_secs(5)))
            .await
            .expect("call");
    }
    start.elapsed().as_secs_f64() * 1e6 / CALLS as f64
}

async fn nodus_calls(system: &System, dest: &Destination) -> f64 {
    let start = Instant::now();
    for _ in 0..CALLS {
        system
            .call(dest, CounterMsg::Get, Duration::from_secs(5))
            .await
            .expect("call");
    }
    start.elapsed().as_secs_f64() * 1e6 / CALLS as f64
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (plain, _) = Actor::spawn(None, Counter, ()).await?;
    let system = System::start(SystemConfig::default()).await?;
    let (named, _) = system.spawn(Some("counter"), Counter, ()).await?;
    let by_name = Destination::from("counter");
    let by_pid = Destination::from(system.pid_of(&named.get_cell()));

    let (mut r_cast, mut n_cast, mut p_cast) = (vec![], vec![], vec![]);
    let (mut r_call, mut n_call) = (vec![], vec![]);
    for round in 0..ROUNDS {
        // The ractor baseline and the nodus variants swap places from one round to the next.
        if round % 2 == 0 {
            r_cast.push(ractor_casts(&plain).await);
            n_cast.push(nodus_casts(&system, &by_name).await);
            p_cast.push(nodus_casts(&system, &by_pid).await);
            r_call.push(ractor_calls(&plain).await);
            n_call.push(nodus_calls(&system, &by_name).await);
        } else {
            p_cast.push(nodus_casts(&system, &by_pid).await);
            n_cast.push(nodus_casts(&system, &by_name).await);
            r_cast.push(ractor_casts(&plain).await);
            n_call.push(nodus_calls(&system, &by_name).await);
            r_call.push(ractor_calls(&plain).await);
        }
    }
    // Each ratio is the median of the per-round ratios: against the baseline of its own round.
    let ratio_name = median_ratio(&n_cast, &r_cast);
    let ratio_pid = median_ratio(&p_cast, &r_cast);
    let ratio_call = median_ratio(&n_call, &r_call);
    let (r_cast, n_cast, p_cast) = (median(r_cast), median(n_cast), median(p_cast));
    let (r_call, n_call) = (median(r_call), median(n_call));
    println!("ractor_cast_msgs_per_s={r_cast:.0}");
    println!("nodus_cast_by_name_msgs_per_s={n_cast:.0}");
    println!("nodus_cast_by_pid_msgs_per_s={p_cast:.0}");
    println!("ractor_call_roundtrip_us={r_call:.2}");
    println!("nodus_call_by_name_roundtrip_us={n_call:.2}");
    println!("ratio_cast_by_name_vs_ractor={ratio_name:.3} (target >= 0.9)");
    println!("ratio_cast_by_pid_vs_ractor={ratio_pid:.3} (target >= 0.9)");
    println!("ratio_call_vs_ractor={ratio_call:.3} (target <= 1.1)");
    system.shutdown().await;
    Ok(())
}
