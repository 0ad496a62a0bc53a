//! Every (state, action) pair against the reference table.

use lottery_activity::{Action, ActivityState as S, TransitionError};

/// The reference table, written out independently of the implementation.
fn reference(state: S, action: Action) -> Option<S> {
    let table: &[(S, &[(Action, S)])] = &[
        (
            S::Editing,
            &[
                (Action::Submit, S::PendingReview),
                (Action::Close, S::Closed),
            ],
        ),
        (
            S::PendingReview,
            &[
                (Action::Approve, S::Approved),
                (Action::Refuse, S::Refused),
                (Action::Revoke, S::Editing),
            ],
        ),
        (
            S::Approved,
            &[
                (Action::Refuse, S::Refused),
                (Action::Close, S::Closed),
                (Action::Start, S::Doing),
            ],
        ),
        (
            S::Refused,
            &[(Action::Revoke, S::Editing), (Action::Close, S::Closed)],
        ),
        (S::Doing, &[(Action::Close, S::Closed)]),
        (S::Closed, &[(Action::Open, S::Open)]),
        (
            S::Open,
            &[(Action::Close, S::Closed), (Action::Start, S::Doing)],
        ),
    ];
    table
        .iter()
        .find(|(s, _)| *s == state)
        .and_then(|(_, moves)| moves.iter().find(|(a, _)| *a == action))
        .map(|(_, to)| *to)
}

#[test]
fn every_state_and_action_pair_follows_the_reference() {
    let mut allowed = 0;
    let mut refused = 0;
    for state in S::ALL {
        for action in Action::ALL {
            match (state.apply(action), reference(state, action)) {
                (Ok(got), Some(want)) => {
                    assert_eq!(got, want, "{state} + {action}");
                    allowed += 1;
                }
                (Err(e), None) => {
                    assert_eq!(e, TransitionError { state, action });
                    let message = e.to_string();
                    assert!(
                        message.contains(state.as_str()) && message.contains(action.as_str()),
                        "message must name state and action: {message}"
                    );
                    refused += 1;
                }
                (got, want) => panic!("{state} + {action}: got {got:?}, reference says {want:?}"),
            }
        }
    }
    assert_eq!((allowed, refused), (14, 35));
}

#[test]
fn the_reference_calls_out_two_refusals() {
    assert!(S::PendingReview.apply(Action::Close).is_err());
    assert!(S::Approved.apply(Action::Revoke).is_err());
}
