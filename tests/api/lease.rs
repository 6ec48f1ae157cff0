//! The beat's leader lease (`arauto::scheduler::lease`) on a real Redis.

use std::sync::Arc;
use std::time::Duration;

use arauto::redis::Keys;
use arauto::scheduler::lease::Lease;

#[tokio::test]
async fn a_leader_busy_longer_than_its_lease_keeps_it_and_loses_it_once_done() {
    let app = crate::helpers::spawn_app().await;
    let keys = Keys::new(app.settings.redis.prefix.clone());
    let leader = Arc::new(Lease::new(&keys, 1_000));
    let other = Lease::new(&keys, 1_000);
    assert!(
        leader.acquire(&app.redis).await.unwrap().is_some(),
        "the first takes it"
    );
    // A tick of 2.5 s, two and a half times the lease: the other beat tries all along.
    let taken_meanwhile = leader
        .hold_while(&app.redis, Duration::from_millis(200), async {
            let mut taken = 0;
            for _ in 0..10 {
                tokio::time::sleep(Duration::from_millis(250)).await;
                if other.acquire(&app.redis).await.unwrap().is_some() {
                    taken += 1;
                }
            }
            taken
        })
        .await;
    assert_eq!(taken_meanwhile, 0, "nobody else leads while the leader is at work");
    // No renewal once the tick is over: a leader that stops (dies) loses it within its TTL.
    tokio::time::sleep(Duration::from_millis(1_300)).await;
    assert!(
        other.acquire(&app.redis).await.unwrap().is_some(),
        "the other takes it over"
    );
    assert_eq!(leader.acquire(&app.redis).await.unwrap(), None, "the first stands by");
}

#[tokio::test]
async fn a_lease_lost_during_a_tick_is_not_taken_back_by_its_renewal() {
    use fred::prelude::KeysInterface;
    let app = crate::helpers::spawn_app().await;
    let keys = Keys::new(app.settings.redis.prefix.clone());
    let leader = Arc::new(Lease::new(&keys, 1_000));
    let other = Lease::new(&keys, 1_000);
    assert!(leader.acquire(&app.redis).await.unwrap().is_some());
    let other_led = leader
        .hold_while(&app.redis, Duration::from_millis(100), async {
            // Lost (a Redis flush), and the other beat takes the free lease.
            let _: i64 = app
                .redis
                .del(arauto::scheduler::lease::leader_key(&keys))
                .await
                .unwrap();
            assert!(other.acquire(&app.redis).await.unwrap().is_some());
            tokio::time::sleep(Duration::from_millis(500)).await;
            other.acquire(&app.redis).await.unwrap().is_some()
        })
        .await;
    assert!(other_led, "the leader's renewal did not take it back");
    assert!(!leader.renew(&app.redis).await.unwrap());
}
