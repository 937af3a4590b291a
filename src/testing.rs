//! Test support: [`LocalCluster`] (N nodes on loopback with kill, pause, partition and heal;
//! see [`cluster`]) and tag-gated tests.
//!
//! Only with the `testing` feature, which also turns on fault injection in the transport
//! (`remote::transport::Faults`). Enable it for tests, not for the library a program ships:
//!
//! ```toml
//! [dev-dependencies]
//! nodus = { version = "...", features = ["testing"] }
//! ```
//!
//! Inside this workspace the tests, the examples and the benches that use it declare
//! `required-features = ["testing"]` (or a `cfg`), so `cargo test --workspace --all-features`
//! runs them all.
//!
//! # Tag-gated tests
//!
//! The runner behind [`macro@crate::test`], as ExUnit's `@tag :distributed`.
//!
//! ExUnit marks a test that needs a peer node with `@tag :distributed`, and `test_helper.exs`
//! excludes the tag unless the node is alive:
//!
//! ```text
//! ExUnit.start(exclude: if Node.alive?, do: [], else: [distributed: true])
//! # mix test                          -> "Excluding tags: [distributed: true] ... 1 excluded"
//! # mix test --include distributed    -> runs it
//! # mix test --only distributed       -> runs only the tagged tests
//! ```
//!
//! nodus does the same with an attribute, a runner and two environment variables:
//!
//! ```no_run
//! // tests/distributed.rs, with `[[test]] name = "distributed" harness = false` in Cargo.toml
//! #[nodus::test(tags = ["distributed"], needs = ["moebi@localhost"])]
//! async fn sends_to_moebi() { /* ... */ }
//!
//! #[nodus::test] // untagged: always runs
//! async fn local_only() { /* ... */ }
//!
//! fn main() {
//!     nodus::testing::main()
//! }
//! ```
//!
//! ```text
//! cargo test --features testing --test distributed                                # sends_to_moebi ... ignored (reason)
//! NODUS_TEST_INCLUDE=distributed cargo test --features testing --test distributed # runs it
//! NODUS_TEST_ONLY=distributed cargo test --features testing --test distributed    # runs only tagged tests
//! ```
//!
//! # The rules
//!
//! [`decide`] applies them to one test, in this order:
//!
//! 1. `NODUS_TEST_ONLY` set (comma-separated tags): the test runs if it has one of them, and
//!    is excluded otherwise (`mix test --only`).
//! 2. The test has a tag listed in `NODUS_TEST_INCLUDE`: it runs (`mix test --include`), even
//!    if a needed node is down; it then fails as it would in ExUnit, with `NoConnection`.
//! 3. The test needs nodes (`needs = [..]`): it runs if the [`NodeProbe`] finds every one of
//!    them alive, and is excluded otherwise.
//! 4. The test has tags: it is excluded.
//! 5. Otherwise it runs.
//!
//! An excluded test is counted as *ignored*, and its line says why and how to include it.
//! It is never passed silently. The usual libtest flags work as well: a name filter,
//! `--list`, `--exact`, and `--include-ignored` or `--ignored` to force excluded tests.
//!
//! # Needed nodes
//!
//! Whether a node is alive is asked of a [`NodeProbe`], once per node before any test starts.
//! The default, [`NoNodes`], answers that no node is alive, so tests that need nodes are
//! excluded unless their tag is included. The node layer plugs its `ping` in through
//! [`Runner::probe`]; any `Fn(&str) -> bool` is a probe, which is also how tests fake one.
//!
//! Tests run each on their own tokio runtime (current-thread, all drivers on), in parallel
//! threads as libtest runs them.

use std::{collections::HashMap, fmt, future::Future};

use libtest_mimic::{Arguments, Completion, Failed, Trial};

pub mod cluster;
mod logs;
pub mod sim;
#[cfg(test)]
mod tests;

pub use cluster::{example_binary, ClusterBuilder, ClusterError, LocalCluster};
pub use logs::log_layer;

/// One test registered by [`macro@crate::test`]. Collected at link time; see [`cases`].
pub struct TestCase {
    path: &'static str,
    tags: &'static [&'static str],
    needs: &'static [&'static str],
    run: fn() -> Result<(), String>,
}

impl fmt::Debug for TestCase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestCase")
            .field("name", &self.name())
            .field("tags", &self.tags)
            .field("needs", &self.needs)
            .finish_non_exhaustive()
    }
}

inventory::collect!(TestCase);

impl TestCase {
    #[doc(hidden)]
    pub const fn __new(
        path: &'static str,
        tags: &'static [&'static str],
        needs: &'static [&'static str],
        run: fn() -> Result<(), String>,
    ) -> Self {
        Self {
            path,
            tags,
            needs,
            run,
        }
    }

    /// The test's name as libtest shows it: its path without the crate name.
    pub fn name(&self) -> &'static str {
        self.path
            .split_once("::")
            .map_or(self.path, |(_, rest)| rest)
    }

    /// The tags it was given.
    pub fn tags(&self) -> &'static [&'static str] {
        self.tags
    }

    /// The nodes it needs.
    pub fn needs(&self) -> &'static [&'static str] {
        self.needs
    }
}

/// Every test registered with [`macro@crate::test`] in this binary, sorted by name.
pub fn cases() -> Vec<&'static TestCase> {
    let mut all: Vec<_> = inventory::iter::<TestCase>.into_iter().collect();
    all.sort_by_key(|c| c.name());
    all
}

/// Tells whether a node is alive, for tests that need it.
///
/// It is called once per needed node before any test starts, outside any async runtime (an
/// implementation that pings may build a runtime and block on it). Any
/// `Fn(&str) -> bool + Send + Sync` is a probe.
///
/// ```
/// use nodus::testing::{decide, Decision, Filter};
/// let moebi_up = |node: &str| node == "moebi@localhost";
/// let decision = decide(&["distributed"], &["moebi@localhost"], &Filter::default(), &moebi_up);
/// assert_eq!(decision, Decision::Run);
/// ```
pub trait NodeProbe: Send + Sync {
    /// Whether `node` (`name@host`) is up and reachable.
    fn is_alive(&self, node: &str) -> bool;
}

impl<F: Fn(&str) -> bool + Send + Sync> NodeProbe for F {
    fn is_alive(&self, node: &str) -> bool {
        self(node)
    }
}

/// A [`NodeProbe`] for which no node is alive (for tests of the runner itself).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoNodes;

impl NodeProbe for NoNodes {
    fn is_alive(&self, _node: &str) -> bool {
        false
    }
}

/// The default [`NodeProbe`]: a node is alive when its host's port mapper knows it (the
/// port mapper on the node's host at `ERL_EPMD_PORT`, else 4369), as `epmd -names` would
/// show it. Each lookup is bounded by two seconds; an unreachable port mapper means the node
/// is not alive.
#[derive(Debug, Clone, Copy)]
pub struct PortMapperProbe {
    port: u16,
}

impl PortMapperProbe {
    /// The probe for the port mapper port of the environment (`ERL_EPMD_PORT`, else 4369).
    pub fn from_env() -> Self {
        let port = std::env::var("ERL_EPMD_PORT")
            .ok()
            .and_then(|p| p.parse().ok())
            .unwrap_or(actor_remote::port_mapper::EPMD_PORT);
        Self { port }
    }
}

impl NodeProbe for PortMapperProbe {
    fn is_alive(&self, node: &str) -> bool {
        let Ok(node) = actor_core::NodeName::parse(node) else {
            return false;
        };
        let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return false;
        };
        runtime.block_on(async {
            let Ok(Ok(addrs)) = tokio::time::timeout(
                std::time::Duration::from_secs(2),
                tokio::net::lookup_host((node.host(), self.port)),
            )
            .await
            else {
                return false;
            };
            for addr in addrs.filter(std::net::SocketAddr::is_ipv4) {
                let client = actor_remote::port_mapper::PortMapperClient::new(addr)
                    .with_timeout(std::time::Duration::from_secs(2));
                if let Ok(found) = client.port_please(node.name()).await {
                    return found.is_some();
                }
            }
            false
        })
    }
}

/// Which tags are included and which only run, as `mix test --include` and `--only`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    include: Vec<String>,
    only: Vec<String>,
}

fn split_tags(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(String::from)
        .collect()
}

impl Filter {
    /// The environment variable that includes tags: `NODUS_TEST_INCLUDE=distributed,slow`.
    pub const INCLUDE_VAR: &'static str = "NODUS_TEST_INCLUDE";
    /// The environment variable that runs only some tags: `NODUS_TEST_ONLY=distributed`.
    pub const ONLY_VAR: &'static str = "NODUS_TEST_ONLY";

    /// The filter `NODUS_TEST_INCLUDE` and `NODUS_TEST_ONLY` ask for (comma-separated tags;
    /// unset or empty means none).
    pub fn from_env() -> Self {
        let var = |name| {
            std::env::var(name)
                .map(|v| split_tags(&v))
                .unwrap_or_default()
        };
        Self {
            include: var(Self::INCLUDE_VAR),
            only: var(Self::ONLY_VAR),
        }
    }

    /// Also includes `tag`.
    #[must_use]
    pub fn include(mut self, tag: impl Into<String>) -> Self {
        self.include.push(tag.into());
        self
    }

    /// Also runs only tests tagged `tag` (with the other `only` tags).
    #[must_use]
    pub fn only(mut self, tag: impl Into<String>) -> Self {
        self.only.push(tag.into());
        self
    }
}

/// What [`decide`] says of one test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Run it.
    Run,
    /// Report it as ignored, with this reason.
    Exclude(String),
}

/// Applies the [rules](self#the-rules) to a test with `tags` that needs `needs`.
///
/// ```
/// use nodus::testing::{decide, Decision, Filter, NoNodes};
/// let tags = ["distributed"];
/// assert!(matches!(decide(&tags, &[], &Filter::default(), &NoNodes), Decision::Exclude(_)));
/// let include = Filter::default().include("distributed");
/// assert_eq!(decide(&tags, &[], &include, &NoNodes), Decision::Run);
/// assert_eq!(decide(&[], &[], &Filter::default(), &NoNodes), Decision::Run);
/// ```
pub fn decide(tags: &[&str], needs: &[&str], filter: &Filter, probe: &dyn NodeProbe) -> Decision {
    let has = |set: &[String]| tags.iter().any(|t| set.iter().any(|s| s == t));
    if !filter.only.is_empty() {
        return if has(&filter.only) {
            Decision::Run
        } else {
            Decision::Exclude(format!(
                "excluded: not tagged {} ({}={})",
                filter.only.join(" or "),
                Filter::ONLY_VAR,
                filter.only.join(",")
            ))
        };
    }
    if has(&filter.include) {
        return Decision::Run;
    }
    let how = |tags: &[&str]| match tags.first() {
        Some(tag) => format!(
            "set {}={tag} to run it, or {}={tag} to run only such tests",
            Filter::INCLUDE_VAR,
            Filter::ONLY_VAR
        ),
        None => "start the node(s) to run it".to_string(),
    };
    if !needs.is_empty() {
        let down: Vec<&str> = needs
            .iter()
            .copied()
            .filter(|n| !probe.is_alive(n))
            .collect();
        return if down.is_empty() {
            Decision::Run
        } else {
            Decision::Exclude(format!(
                "excluded: needs {}, which is not alive; {}",
                down.join(", "),
                how(tags)
            ))
        };
    }
    if !tags.is_empty() {
        return Decision::Exclude(format!("excluded tag {}; {}", tags.join(", "), how(tags)));
    }
    Decision::Run
}

/// Runs the registered tests: the `main` of a `harness = false` test target.
///
/// ```no_run
/// // The `fn main` of tests/distributed.rs, a `harness = false` target:
/// let moebi_up = |node: &str| node == "moebi@localhost"; // any NodeProbe
/// nodus::testing::Runner::from_env().probe(moebi_up).run();
/// ```
pub struct Runner {
    filter: Filter,
    probe: Box<dyn NodeProbe>,
}

impl fmt::Debug for Runner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runner")
            .field("filter", &self.filter)
            .finish_non_exhaustive()
    }
}

impl Runner {
    /// A runner with the [`Filter::from_env`] filter and the [`PortMapperProbe`].
    pub fn from_env() -> Self {
        Self {
            filter: Filter::from_env(),
            probe: Box::new(PortMapperProbe::from_env()),
        }
    }

    /// Uses `filter` instead of the environment's.
    #[must_use]
    pub fn filter(mut self, filter: Filter) -> Self {
        self.filter = filter;
        self
    }

    /// Asks `probe` whether needed nodes are alive.
    #[must_use]
    pub fn probe(mut self, probe: impl NodeProbe + 'static) -> Self {
        self.probe = Box::new(probe);
        self
    }

    /// The decision for every registered test, without running any.
    pub fn plan(&self) -> Vec<(&'static TestCase, Decision)> {
        // The probe may be slow (a ping): ask once per node.
        let mut alive: HashMap<&'static str, bool> = HashMap::new();
        cases()
            .into_iter()
            .map(|case| {
                for node in case.needs {
                    alive
                        .entry(node)
                        .or_insert_with(|| self.probe.is_alive(node));
                }
                let known = |node: &str| alive.get(node).copied().unwrap_or(false);
                (case, decide(case.tags, case.needs, &self.filter, &known))
            })
            .collect()
    }

    /// Runs the tests libtest's command line selects, and exits with libtest's status: 101
    /// if any failed.
    pub fn run(self) -> ! {
        let args = Arguments::from_args();
        // `--ignored` / `--include-ignored` force excluded tests, as `mix test --include`.
        let forced = args.ignored || args.include_ignored;
        let trials = self
            .plan()
            .into_iter()
            .map(|(case, decision)| {
                let excluded = matches!(decision, Decision::Exclude(_));
                let run = case.run;
                let trial = Trial::ignorable_test(case.name(), move || match decision {
                    Decision::Exclude(reason) if !forced => Ok(Completion::ignored_with(reason)),
                    _ => run().map(|()| Completion::Completed).map_err(Failed::from),
                });
                trial.with_ignored_flag(forced && excluded)
            })
            .collect();
        libtest_mimic::run(&args, trials).exit()
    }
}

/// Runs the registered tests with the environment's filter, asking the port mapper which
/// needed nodes are alive: the whole `main` of a `harness = false` test target. See
/// [`Runner`] to plug in another node probe.
pub fn main() -> ! {
    Runner::from_env().run()
}

/// What a test may return: `()` or `Result<(), E: Debug>`.
#[doc(hidden)]
pub trait TestOutput {
    /// `Err` with the failure's description.
    fn into_outcome(self) -> Result<(), String>;
}

impl TestOutput for () {
    fn into_outcome(self) -> Result<(), String> {
        Ok(())
    }
}

impl<E: fmt::Debug> TestOutput for Result<(), E> {
    fn into_outcome(self) -> Result<(), String> {
        self.map_err(|e| format!("the test returned Err: {e:?}"))
    }
}

#[doc(hidden)]
pub fn __outcome<T: TestOutput>(output: T) -> Result<(), String> {
    output.into_outcome()
}

/// Runs `future` to completion on a new current-thread tokio runtime with all drivers on.
#[doc(hidden)]
pub fn __block_on<R, F: Future<Output = R>>(future: F) -> R {
    // A test that cannot get a runtime cannot run at all; this is the failure it reports.
    #[allow(clippy::expect_used)]
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("nodus::test: cannot build a tokio runtime");
    runtime.block_on(future)
}
