//! Curator's `TestStrategies` (curator-x-discovery), ported to the [`ProviderStrategy`]s.
//!
//! Curator's strategies take an `InstanceProvider` (here the test's fixed list); this crate's
//! [`ProviderStrategy::pick`] takes the instances themselves. Curator's test provider holds
//! instances of the service `foo` with ids `"0"`, `"1"`, ... (or from a given start).
//!
//! These are plain tests: no server.
//!
//! Not ported: none.

use std::sync::Arc;

use zk_recipes::discovery::{
    ProviderStrategy, RandomStrategy, RoundRobinStrategy, ServiceInstance, StickyStrategy,
};

/// Curator's `TestInstanceProvider(qty, startingAt)`.
fn instances(qty: usize, starting_at: usize) -> Vec<Arc<ServiceInstance<()>>> {
    (0..qty)
        .map(|i| {
            Arc::new(
                ServiceInstance::builder("foo")
                    .id((i + starting_at).to_string())
                    .build()
                    .expect("instance"),
            )
        })
        .collect()
}

/// Curator: `TestStrategies.testRandom`.
///
/// 1000 random picks among 10 instances: the sample standard deviation of the counts per
/// instance is at most 20 (Curator's "meager check for even distribution"; about 9.5 is
/// expected).
#[test]
fn test_random() {
    const QTY: usize = 10;
    const ITERATIONS: usize = 1000;
    let provider = instances(QTY, 0);
    let strategy = RandomStrategy;
    let mut counts = [0_u64; QTY];
    for _ in 0..ITERATIONS {
        let instance = strategy.pick(&provider).expect("an instance");
        let id: usize = instance.id.parse().expect("a numeric id");
        counts[id] += 1;
    }
    let mean = counts.iter().sum::<u64>() as f64 / QTY as f64;
    let variance = counts
        .iter()
        .map(|&c| (c as f64 - mean).powi(2))
        .sum::<f64>()
        / (QTY - 1) as f64;
    let deviation = variance.sqrt();
    assert!(deviation <= (QTY * 2) as f64, "{deviation} ({counts:?})");
}

/// Curator: `TestStrategies.testRoundRobin`.
///
/// The first 10 picks are the instances in order (the turn starts at the first), then
/// 12340 more picks go round: pick `i` is instance `i % 10`.
#[test]
fn test_round_robin() {
    const QTY: usize = 10;
    let provider = instances(QTY, 0);
    let strategy = RoundRobinStrategy::new();
    for i in 0..QTY {
        let instance = strategy.pick(&provider).expect("an instance");
        assert_eq!(instance.id, i.to_string());
    }
    for i in 0..(1234 * QTY) {
        let instance = strategy.pick(&provider).expect("an instance");
        assert_eq!(instance.id, (i % QTY).to_string());
    }
}

/// Curator: `TestStrategies.testSticky`.
///
/// A sticky strategy over random picks gives the same instance 1000 times; once the
/// instances are others (ids 10 to 19: the one it stuck to is gone) it gives another one,
/// and its instance number changes; then it sticks to that one for 1000 picks.
#[test]
fn test_sticky() {
    const QTY: usize = 10;
    let provider = instances(QTY, 0);
    let strategy = StickyStrategy::new(RandomStrategy);

    let the_instance = strategy.pick(&provider).expect("an instance");
    let instance_number = strategy.instance_number();
    assert!(instance_number.is_some());
    for _ in 0..1000 {
        assert_eq!(strategy.pick(&provider), Some(the_instance.clone()));
    }

    // What happens when the instance goes down.
    let provider = instances(QTY, QTY);
    let other = strategy.pick(&provider).expect("an instance");
    assert_ne!(other, the_instance);
    assert_ne!(strategy.instance_number(), instance_number);

    let the_instance = strategy.pick(&provider).expect("an instance");
    for _ in 0..1000 {
        assert_eq!(strategy.pick(&provider), Some(the_instance.clone()));
    }
}
