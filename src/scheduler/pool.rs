//! Which number of a pool sends to whom, and when (PRODUCT §4, number pools with a sticky
//! sender). Pure: the beat gives each usable number's free send instants for this tick
//! (already paced per number, so no number is ever faster than the campaign's pace) and
//! each candidate's sticky number; this decides.

use chrono::{DateTime, Utc};
use std::collections::VecDeque;
use uuid::Uuid;

/// One usable number of the pool (connected, not over its daily limit): its free send
/// instants this tick, in order (UTC; possibly none yet), and its load so far today (sends
/// made and planned), which breaks ties in favour of the least used.
#[derive(Debug, Clone)]
pub struct NumberSlots {
    pub instance_id: Uuid,
    pub times: Vec<DateTime<Utc>>,
    pub used_today: u64,
}

/// A candidate given a number and an instant: its index in the candidates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    pub candidate: usize,
    pub instance_id: Uuid,
    pub at: DateTime<Utc>,
}

/// Gives candidates (in their send order) the free instants of `numbers`:
///
/// - a candidate whose sticky number (the one that last messaged it) is one of `numbers`
///   takes that number's earliest free instant; when that number has none left this tick,
///   the candidate waits for it (it is not given another number);
/// - every other candidate takes the earliest free instant of any number, the least used
///   number first on a tie, so the load spreads evenly.
///
/// Sticky candidates go first, so that a number's instants are not all taken by others.
/// At most `max` candidates are given a slot (the campaign's backlog allowance): the
/// earliest of the slots given, so that instants nobody takes (a number whose candidates all
/// wait for another) never crowd out one that has a candidate. Returns the slots sorted by
/// instant; candidates not in it stay pending.
pub fn assign(numbers: &[NumberSlots], sticky: &[Option<Uuid>], max: usize) -> Vec<Slot> {
    let mut free: Vec<VecDeque<DateTime<Utc>>> = numbers.iter().map(|n| n.times.iter().copied().collect()).collect();
    let mut load: Vec<u64> = numbers.iter().map(|n| n.used_today).collect();
    let mut slots = Vec::new();
    let mut others = Vec::new();
    for (candidate, wanted) in sticky.iter().enumerate() {
        match wanted.and_then(|id| numbers.iter().position(|n| n.instance_id == id)) {
            Some(k) => {
                if let Some(at) = free[k].pop_front() {
                    load[k] += 1;
                    slots.push(Slot {
                        candidate,
                        instance_id: numbers[k].instance_id,
                        at,
                    });
                }
            }
            None => others.push(candidate),
        }
    }
    for candidate in others {
        let best = (0..numbers.len())
            .filter(|k| !free[*k].is_empty())
            .min_by_key(|k| (free[*k][0], load[*k], *k));
        let Some(k) = best else { break };
        let at = free[k].pop_front().expect("a number with a free instant");
        load[k] += 1;
        slots.push(Slot {
            candidate,
            instance_id: numbers[k].instance_id,
            at,
        });
    }
    slots.sort_by_key(|s| (s.at, s.candidate));
    slots.truncate(max);
    slots
}

/// How many of each number's instants `slots` took, in the order of `numbers`.
pub fn taken(numbers: &[NumberSlots], slots: &[Slot]) -> Vec<usize> {
    numbers
        .iter()
        .map(|n| slots.iter().filter(|s| s.instance_id == n.instance_id).count())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(s: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 + s, 0).unwrap()
    }

    fn number(n: u128, times: &[i64], used_today: u64) -> NumberSlots {
        NumberSlots {
            instance_id: Uuid::from_u128(n),
            times: times.iter().map(|s| at(*s)).collect(),
            used_today,
        }
    }

    #[test]
    fn candidates_without_a_sticky_number_spread_over_the_numbers_by_earliest_instant() {
        let numbers = [
            number(1, &[0, 10, 20], 0),
            number(2, &[0, 10, 20], 0),
            number(3, &[0, 10, 20], 0),
        ];
        let slots = assign(&numbers, &[None; 6], 100);
        assert_eq!(slots.len(), 6);
        assert_eq!(taken(&numbers, &slots), vec![2, 2, 2]);
        // Three at once (one per number), then three ten seconds later.
        let instants: Vec<_> = slots.iter().map(|s| s.at).collect();
        assert_eq!(instants, vec![at(0), at(0), at(0), at(10), at(10), at(10)]);
    }

    #[test]
    fn the_least_used_number_goes_first_on_a_tie() {
        let numbers = [number(1, &[0], 40), number(2, &[0], 3), number(3, &[0], 12)];
        let slots = assign(&numbers, &[None], 100);
        assert_eq!(slots[0].instance_id, Uuid::from_u128(2));
    }

    #[test]
    fn a_recipient_goes_back_to_the_number_that_last_messaged_it() {
        let numbers = [number(1, &[0, 10], 0), number(2, &[0, 10], 0)];
        let two = Some(Uuid::from_u128(2));
        let slots = assign(&numbers, &[two, two, None], 100);
        let of = |c: usize| slots.iter().find(|s| s.candidate == c).map(|s| s.instance_id);
        assert_eq!(of(0), two);
        assert_eq!(of(1), two);
        assert_eq!(of(2), Some(Uuid::from_u128(1)));
    }

    #[test]
    fn a_sticky_recipient_waits_for_its_number_rather_than_moving() {
        let numbers = [number(1, &[0, 10, 20], 0), number(2, &[0], 0)];
        let two = Some(Uuid::from_u128(2));
        let slots = assign(&numbers, &[two, two, None], 100);
        assert!(
            slots.iter().all(|s| s.candidate != 1),
            "the second waits for number 2: {slots:?}"
        );
        assert_eq!(taken(&numbers, &slots), vec![1, 1]);
    }

    #[test]
    fn a_sticky_number_outside_the_usable_numbers_does_not_hold_the_recipient() {
        let numbers = [number(1, &[0], 0)];
        let slots = assign(&numbers, &[Some(Uuid::from_u128(9))], 100);
        assert_eq!(slots.len(), 1);
        assert_eq!(slots[0].instance_id, Uuid::from_u128(1));
    }

    #[test]
    fn the_allowance_counts_the_slots_given_not_the_instants_offered() {
        // Number 2's instants come first, but every candidate waits for number 1: the three
        // allowed go to number 1, not to instants nobody can take (they would starve it).
        let numbers = [number(1, &[10, 11, 12], 0), number(2, &[0, 1, 2], 0)];
        let one = Some(Uuid::from_u128(1));
        let slots = assign(&numbers, &[one, one, one], 3);
        assert_eq!(taken(&numbers, &slots), vec![3, 0]);
        // And the allowance keeps the earliest slots given.
        let slots = assign(&numbers, &[None; 6], 2);
        assert_eq!(slots.iter().map(|s| s.at).collect::<Vec<_>>(), vec![at(0), at(1)]);
    }

    #[test]
    fn no_number_is_given_more_instants_than_it_has() {
        let numbers = [number(1, &[0], 0), number(2, &[], 0)];
        let slots = assign(&numbers, &[None, None, None], 100);
        assert_eq!(slots.len(), 1);
    }
}
