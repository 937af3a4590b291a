use super::*;

/// One row: a test's tags and needs, the filter, the live nodes, and the expected decision
/// (`"run"`, or a fragment of the exclusion reason).
#[track_caller]
fn check(tags: &[&str], needs: &[&str], filter: Filter, alive: &[&str], expect: &str) {
    let alive: Vec<String> = alive.iter().map(|s| s.to_string()).collect();
    let probe = move |node: &str| alive.iter().any(|a| a == node);
    match decide(tags, needs, &filter, &probe) {
        Decision::Run => assert_eq!(expect, "run", "{tags:?} {needs:?} ran"),
        Decision::Exclude(reason) => assert!(
            expect != "run" && reason.contains(expect),
            "{tags:?} {needs:?}: reason {reason:?} does not contain {expect:?}"
        ),
    }
}

const MOEBI: &str = "moebi@localhost";

#[test]
fn untagged_tests_run() {
    check(&[], &[], Filter::default(), &[], "run");
    check(
        &[],
        &[],
        Filter::default().include("distributed"),
        &[],
        "run",
    );
}

#[test]
fn tagged_tests_are_excluded_with_how_to_include_them() {
    let d = ["distributed"];
    check(
        &d,
        &[],
        Filter::default(),
        &[],
        "NODUS_TEST_INCLUDE=distributed",
    );
    check(
        &d,
        &[],
        Filter::default().include("slow"),
        &[],
        "excluded tag distributed",
    );
    check(
        &d,
        &[],
        Filter::default().include("distributed"),
        &[],
        "run",
    );
}

#[test]
fn needed_nodes_decide_unless_included() {
    let d = ["distributed"];
    check(
        &d,
        &[MOEBI],
        Filter::default(),
        &[],
        "needs moebi@localhost, which is not alive",
    );
    check(&d, &[MOEBI], Filter::default(), &[MOEBI], "run");
    check(
        &d,
        &[MOEBI, "kate@localhost"],
        Filter::default(),
        &[MOEBI],
        "needs kate@localhost",
    );
    // Included: runs even with the node down (and fails with NoConnection, as in ExUnit).
    check(
        &d,
        &[MOEBI],
        Filter::default().include("distributed"),
        &[],
        "run",
    );
    // No tag, only needs: decided by the probe alone.
    check(&[], &[MOEBI], Filter::default(), &[], "start the node(s)");
    check(&[], &[MOEBI], Filter::default(), &[MOEBI], "run");
}

#[test]
fn only_runs_only_tagged_tests() {
    let only = || Filter::default().only("distributed");
    check(
        &[],
        &[],
        only(),
        &[],
        "not tagged distributed (NODUS_TEST_ONLY=distributed)",
    );
    check(&["slow"], &[], only(), &[], "not tagged distributed");
    check(&["distributed"], &[MOEBI], only(), &[], "run");
    check(&["slow", "distributed"], &[], only(), &[], "run");
}

#[test]
fn tags_in_the_environment_are_comma_separated() {
    assert_eq!(split_tags(" distributed, slow,,"), ["distributed", "slow"]);
    assert!(split_tags("").is_empty());
}
