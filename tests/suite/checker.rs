//! The checker over hand-written histories: each invariant, and the text it prints.

use oversell::testing::{check, Contents, Exit, Fate, History, Observation};
use oversell::FindingKind;

fn run(text: &str, buyers: u32, tickets: u32, fin: Option<Contents>) -> Vec<oversell::Violation> {
    let mut h = History::parse(text);
    h.fates = (0..buyers).map(|b| Fate::ok(1000 + b)).collect();
    check(&Observation {
        tickets,
        buyers,
        history: &h,
        final_store: fin.as_ref(),
        leaked: false,
    })
}

fn render(v: &[oversell::Violation]) -> String {
    v.iter().map(|v| format!("{v}\n")).collect()
}

const SOUND: &str = "\
10 0 start
11 1 start
12 0 check 1
13 1 check 1
14 0 acquired
15 0 read 1
16 0 truncated 0
17 0 wrote 0
18 0 released
19 1 acquired
20 0 bought 1
21 1 read 0
22 1 released
23 1 sold_out
";

#[test]
fn a_sound_history_is_clean() {
    assert!(run(SOUND, 2, 1, Some(Contents::Count(0))).is_empty());
}

/// The lesson's race: both read 1 before either writes.
const RACE: &str = "\
10 0 start
11 1 start
12 0 acquired
13 1 acquired
14 0 read 1
15 1 read 1
16 0 wrote 0
17 1 wrote 0
18 0 released
19 1 released
20 0 bought 1
21 1 bought 1
";

#[test]
fn the_lesson_race_is_oversold_double_sale_lost_update_and_overlap() {
    let v = run(RACE, 2, 1, Some(Contents::Count(0)));
    let kinds: Vec<FindingKind> = v.iter().map(|v| v.kind).collect();
    assert_eq!(
        kinds,
        vec![
            FindingKind::Oversold,
            FindingKind::DoubleSale,
            FindingKind::LostUpdate,
            FindingKind::Overlap
        ]
    );
    assert_eq!(v[1].buyers, vec![0, 1]);
    insta::assert_snapshot!("lesson_race", render(&v));
}

#[test]
fn lost_update_without_oversell() {
    // Three tickets, both buyers read 3 and write 2: one sale vanishes.
    let text = RACE
        .replace("read 1", "read 3")
        .replace("wrote 0", "wrote 2")
        .replace("bought 1", "bought 3");
    let v = run(&text, 2, 3, Some(Contents::Count(2)));
    let kinds: Vec<FindingKind> = v.iter().map(|v| v.kind).collect();
    assert_eq!(
        kinds,
        vec![
            FindingKind::DoubleSale,
            FindingKind::LostUpdate,
            FindingKind::Overlap
        ]
    );
    insta::assert_snapshot!("lost_update", render(&v));
}

#[test]
fn a_torn_check_is_not_a_finding_but_a_torn_read_is() {
    let torn_check = SOUND.replace("13 1 check 1", "13 1 check torn");
    assert!(run(&torn_check, 2, 1, Some(Contents::Count(0))).is_empty());

    let torn_read = SOUND
        .replace("21 1 read 0\n", "21 1 error corrupt_read\n")
        .replace("23 1 sold_out\n", "");
    let v = run(&torn_read, 2, 1, Some(Contents::Count(0)));
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].kind, FindingKind::CorruptStore);
    assert_eq!(v[0].buyers, vec![1]);
}

#[test]
fn a_broken_final_store_is_corrupt() {
    let v = run(SOUND, 2, 1, Some(Contents::Corrupt("an empty file".into())));
    assert_eq!(v.len(), 1);
    insta::assert_snapshot!("corrupt_final", render(&v));
    let v = run(SOUND, 2, 1, None);
    assert_eq!(v[0].kind, FindingKind::CorruptStore);
}

#[test]
fn hang_and_crash_name_the_buyer_and_step() {
    let text = "10 0 start\n11 1 start\n12 0 acquired\n13 0 read 1\n";
    let mut h = History::parse(text);
    h.timed_out = true;
    h.fates = (0..2)
        .map(|b| Fate {
            killed_by_timeout: true,
            exit: Exit::Signal(9),
            ..Fate::ok(b)
        })
        .collect();
    let v = check(&Observation {
        tickets: 1,
        buyers: 2,
        history: &h,
        final_store: Some(&Contents::Count(1)),
        leaked: false,
    });
    assert_eq!(v.len(), 1, "{v:?}");
    assert_eq!(v[0].kind, FindingKind::Hang);
    insta::assert_snapshot!("hang", render(&v));

    let mut h = History::parse("10 0 start\n11 0 check 1\n12 0 acquired\n");
    h.fates = vec![Fate {
        exit: Exit::Code(2),
        stderr_tail: "error: buyer 0: lock: flock: Bad file descriptor".into(),
        ..Fate::ok(1)
    }];
    let v = check(&Observation {
        tickets: 1,
        buyers: 1,
        history: &h,
        final_store: Some(&Contents::Count(1)),
        leaked: true,
    });
    let kinds: Vec<FindingKind> = v.iter().map(|v| v.kind).collect();
    assert_eq!(kinds, vec![FindingKind::Crash, FindingKind::LeakedProcess]);
    insta::assert_snapshot!("crash", render(&v));
}

#[test]
fn a_killed_buyer_is_unknown_not_a_finding() {
    // Buyer 1 was killed by an injected fault after writing: its sale may or may not
    // count, and neither reading is a finding.
    let text = "10 0 start\n11 1 start\n12 1 acquired\n13 1 read 2\n14 1 wrote 1\n\
                15 0 acquired\n16 0 read 1\n17 0 wrote 0\n18 0 released\n19 0 bought 1\n";
    let mut h = History::parse(text);
    h.fates = vec![
        Fate::ok(1),
        Fate {
            killed_by_fault: true,
            exit: Exit::Signal(9),
            ..Fate::ok(2)
        },
    ];
    let v = check(&Observation {
        tickets: 2,
        buyers: 2,
        history: &h,
        final_store: Some(&Contents::Count(0)),
        leaked: false,
    });
    assert!(v.is_empty(), "{v:?}");
}

/// One waiter, one claim: counts of one read as one.
#[test]
fn one_of_a_thing_is_singular() {
    let text = "10 0 start\n11 1 start\n12 0 acquired\n13 0 read 1\n";
    let mut h = History::parse(text);
    h.fates = vec![
        Fate {
            exit: Exit::Signal(9),
            pid: 77,
            killed_by_fault: true,
            killed_by_timeout: false,
            stderr_tail: String::new(),
        },
        Fate::ok(78),
    ];
    h.stuck = Some(oversell::testing::Stuck::Deadlock {
        waiting: vec![1],
        holder: Some(0),
    });
    let v = check(&Observation {
        tickets: 1,
        buyers: 2,
        history: &h,
        final_store: Some(&Contents::Count(1)),
        leaked: false,
    });
    let stale = v
        .iter()
        .find(|v| v.kind == FindingKind::StaleLock)
        .expect("stale lock");
    assert!(
        stale.detail.ends_with("; buyer 1 waits for it forever"),
        "{}",
        stale.detail
    );
    h.fates[0].killed_by_fault = false;
    h.fates[0].exit = Exit::Code(0);
    let v = check(&Observation {
        tickets: 1,
        buyers: 2,
        history: &h,
        final_store: Some(&Contents::Count(1)),
        leaked: false,
    });
    let dead = v
        .iter()
        .find(|v| v.kind == FindingKind::Deadlock)
        .expect("deadlock");
    assert!(
        dead.detail
            .starts_with("every live buyer waits on the lock: buyer 1 ("),
        "{}",
        dead.detail
    );
    let sold = run(
        "10 0 start\n11 0 bought 1\n",
        1,
        0,
        Some(Contents::Count(0)),
    );
    let over = sold
        .iter()
        .find(|v| v.kind == FindingKind::Oversold)
        .expect("oversold");
    assert_eq!(
        over.detail,
        "1 buyer claims a sale; the store held 0 (buyer 0)"
    );
}

/// Buyer 0 sold ticket 1 and confirmed it (step 5); the power was cut at step 7 (ns 30)
/// after buyer 1 looked; fresh buyer 2 took buyer 1's place.
const CUT: &str = "\
10 0 start
11 0 check 1
12 0 acquired
13 0 read 1
14 0 wrote 0
15 0 released
16 0 bought 1
20 1 start
21 1 check 0
40 2 start
41 2 check 1
42 2 acquired
43 2 read 1
44 2 wrote 0
45 2 released
46 2 bought 1
";

fn cut(store_after: Contents, fin: Contents) -> Vec<oversell::Violation> {
    let mut h = History::parse(CUT);
    h.fates = (0..3).map(|b| Fate::ok(1000 + b)).collect();
    h.fates[1].killed_by_fault = true;
    h.fates[1].exit = Exit::Signal(9);
    h.power_cut = Some(oversell::testing::PowerCut {
        step: 7,
        ns: 30,
        step_ns: vec![10, 12, 13, 14, 15, 20, 30, 40, 42],
        store_after: Some(store_after),
        fresh: vec![(1, 2)],
        disk: vec!["store.json: the rename over it undone".into()],
        outcomes: 2,
        state: None,
    });
    check(&Observation {
        tickets: 1,
        buyers: 3,
        history: &h,
        final_store: Some(&fin),
        leaked: false,
    })
}

#[test]
fn a_sale_the_power_cut_undid_is_a_lost_sale_and_nothing_else() {
    let v = cut(Contents::Count(1), Contents::Count(0));
    assert_eq!(
        render(&v),
        "lost_sale: buyer 0's sale of ticket 1 was confirmed at step 5; after the power cut \
         at step 7 the store shows it unsold (1 left), and buyer 2 sold it again \
         (store.json: the rename over it undone)\n"
    );
    assert_eq!(v[0].buyers, vec![0, 2]);
    assert_eq!(v[0].kind, FindingKind::LostSale);
}

#[test]
fn a_sale_the_power_cut_kept_is_no_finding() {
    // The store kept buyer 0's write (0 left): buyer 2 found none (here it claims one
    // anyway, which the old checks catch as they always did).
    let v = cut(Contents::Count(0), Contents::Count(-1));
    assert!(
        v.iter().all(|v| v.kind != FindingKind::LostSale),
        "{}",
        render(&v)
    );
    assert!(
        v.iter().any(|v| v.kind == FindingKind::DoubleSale),
        "{}",
        render(&v)
    );
}

#[test]
fn a_buyer_that_gave_up_before_any_step_claims_nothing_and_is_no_crash() {
    // Buyer 1's lock command found the lock taken and exited 75 (EX_TEMPFAIL) before its
    // buyer ran; buyer 0 bought the one ticket.
    let text = "10 0 start\n11 0 acquired\n12 0 read 1\n13 0 wrote 0\n14 0 released\n\
                15 0 bought 1\n";
    let judge = |exit: Exit, text: &str| {
        let mut h = History::parse(text);
        h.fates = vec![
            Fate::ok(1000),
            Fate {
                exit,
                ..Fate::ok(1001)
            },
        ];
        check(&Observation {
            tickets: 1,
            buyers: 2,
            history: &h,
            final_store: Some(&Contents::Count(0)),
            leaked: false,
        })
    };
    assert!(judge(Exit::Code(75), text).is_empty());
    // Another status there is a crash, whose line says how a command gives up.
    let v = judge(Exit::Code(1), text);
    assert_eq!(v.len(), 1, "{v:?}");
    assert_eq!(v[0].kind, FindingKind::Crash);
    assert!(v[0].detail.contains("exits 75"), "{}", v[0].detail);
    // 75 after a step of its own is no give-up: the buyer had started.
    let started = format!("{text}16 1 start\n");
    let v = judge(Exit::Code(75), &started);
    assert_eq!(v.len(), 1, "{v:?}");
    assert_eq!(v[0].kind, FindingKind::Crash);
    assert!(!v[0].detail.contains("exits 75"), "{}", v[0].detail);
}
