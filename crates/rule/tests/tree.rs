//! Building, validating and evaluating rule trees.

use std::collections::HashMap;

use lottery_domain::TreeId;
use lottery_rule::{
    Decision, EvalError, Facts, Line, LineOp, LineRef, Node, NodeId, RuleTree, RuleTreeSpec,
    TreeError,
};
use proptest::prelude::*;

fn tid() -> TreeId {
    TreeId::new(1).expect("positive")
}

fn line(from: i64, to: i64, op: LineOp, value: &str) -> Line {
    Line::new(from, to, op, value)
}

fn at(index: usize, from: i64, to: i64) -> LineRef {
    LineRef {
        index,
        from: NodeId(from),
        to: NodeId(to),
    }
}

/// The reference tree: gender, then age, then an activity id.
fn reference() -> RuleTree {
    RuleTree::new(
        tid(),
        "user targeting",
        NodeId(1),
        vec![
            Node::stem(1, "gender"),
            Node::stem(11, "age"),
            Node::stem(12, "age"),
            Node::fruit(111, "100001"),
            Node::fruit(112, "100002"),
            Node::fruit(121, "100003"),
            Node::fruit(122, "100004"),
        ],
        vec![
            line(1, 11, LineOp::Eq, "man"),
            line(1, 12, LineOp::Eq, "woman"),
            line(11, 111, LineOp::Lt, "25"),
            line(11, 112, LineOp::Ge, "25"),
            line(12, 121, LineOp::Lt, "25"),
            line(12, 122, LineOp::Ge, "25"),
        ],
    )
    .expect("reference tree is valid")
}

fn facts(pairs: &[(&str, &str)]) -> Facts {
    pairs.iter().copied().collect()
}

fn value_of(tree: &RuleTree, pairs: &[(&str, &str)]) -> Result<String, EvalError> {
    tree.evaluate(&facts(pairs)).map(|d| d.value)
}

#[test]
fn reference_tree_decides_by_gender_and_age() {
    let tree = reference();
    assert_eq!(
        value_of(&tree, &[("gender", "man"), ("age", "18")]).as_deref(),
        Ok("100001")
    );
    assert_eq!(
        value_of(&tree, &[("gender", "man"), ("age", "25")]).as_deref(),
        Ok("100002")
    );
    assert_eq!(
        value_of(&tree, &[("gender", "woman"), ("age", "24")]).as_deref(),
        Ok("100003")
    );
    assert_eq!(
        value_of(&tree, &[("gender", "woman"), ("age", "30")]).as_deref(),
        Ok("100004")
    );
    assert_eq!(tree.depth(), 3);
}

#[test]
fn decision_records_the_path() {
    let decision = reference().evaluate(&facts(&[("gender", "man"), ("age", "25")]));
    assert_eq!(
        decision,
        Ok(Decision {
            value: "100002".into(),
            path: vec![NodeId(1), NodeId(11), NodeId(112)]
        })
    );
    assert_eq!(decision.ok().and_then(|d| d.fruit()), Some(NodeId(112)));
}

#[test]
fn plain_hash_maps_and_json_numbers_are_facts_too() {
    let tree = reference();
    let map: HashMap<&str, &str> = [("gender", "woman"), ("age", "24.0")].into();
    assert_eq!(
        tree.evaluate(&map).map(|d| d.value).as_deref(),
        Ok("100003")
    );

    let json = serde_json::json!({ "gender": "man", "age": 25 });
    let object = json.as_object().expect("object");
    let facts = Facts::from_json(object).expect("flat object");
    assert_eq!(
        tree.evaluate(&facts).map(|d| d.value).as_deref(),
        Ok("100002")
    );
    let json = serde_json::json!({ "gender": "man", "age": 24.5 });
    let facts = Facts::from_json_value(&json).expect("flat object");
    assert_eq!(
        tree.evaluate(&facts).map(|d| d.value).as_deref(),
        Ok("100001")
    );
}

#[test]
fn missing_fact_and_unmatched_value_are_typed_errors() {
    let tree = reference();
    assert_eq!(
        value_of(&tree, &[("gender", "man")]),
        Err(EvalError::MissingFact {
            node: NodeId(11),
            key: "age".into()
        })
    );
    assert_eq!(
        value_of(&tree, &[("age", "30")]),
        Err(EvalError::MissingFact {
            node: NodeId(1),
            key: "gender".into()
        })
    );
    assert_eq!(
        value_of(&tree, &[("gender", "other"), ("age", "30")]),
        Err(EvalError::NoMatchingLine {
            node: NodeId(1),
            key: "gender".into(),
            value: "other".into()
        })
    );
    // "abc" is not a number, so it is compared with "25" as text: "abc" > "25", so GE matches.
    assert_eq!(
        value_of(&tree, &[("gender", "man"), ("age", "abc")]).as_deref(),
        Ok("100002")
    );
}

/// One stem `x` with the given lines, each to its own fruit named after the line.
fn single_stem(lines: &[(LineOp, &str)]) -> RuleTree {
    let mut nodes = vec![Node::stem(1, "x")];
    let mut ls = Vec::new();
    for (i, (op, value)) in lines.iter().enumerate() {
        let id = i as i64 + 2;
        nodes.push(Node::fruit(id, format!("line{i}")));
        ls.push(line(1, id, *op, value));
    }
    RuleTree::new(tid(), "single", NodeId(1), nodes, ls).expect("valid")
}

#[test]
fn numbers_compare_numerically_and_text_lexicographically() {
    let tree = single_stem(&[(LineOp::Lt, "10"), (LineOp::Ge, "10")]);
    assert_eq!(value_of(&tree, &[("x", "9")]).as_deref(), Ok("line0"));
    assert_eq!(value_of(&tree, &[("x", "10.00")]).as_deref(), Ok("line1"));
    assert_eq!(value_of(&tree, &[("x", "-3")]).as_deref(), Ok("line0"));

    let tree = single_stem(&[(LineOp::Lt, "banana"), (LineOp::Gt, "banana")]);
    assert_eq!(value_of(&tree, &[("x", "apple")]).as_deref(), Ok("line0"));
    assert_eq!(value_of(&tree, &[("x", "cherry")]).as_deref(), Ok("line1"));
    assert!(matches!(
        value_of(&tree, &[("x", "banana")]),
        Err(EvalError::NoMatchingLine { .. })
    ));

    let tree = single_stem(&[(LineOp::Eq, "25"), (LineOp::Le, "100")]);
    assert_eq!(value_of(&tree, &[("x", "25.0")]).as_deref(), Ok("line0"));
    assert_eq!(value_of(&tree, &[("x", "100")]).as_deref(), Ok("line1"));
}

#[test]
fn enum_lines_test_membership() {
    let tree = single_stem(&[(LineOp::Enum, "gold, silver"), (LineOp::Enum, "1, 2, 3.5")]);
    assert_eq!(value_of(&tree, &[("x", "gold")]).as_deref(), Ok("line0"));
    assert_eq!(value_of(&tree, &[("x", "silver")]).as_deref(), Ok("line0"));
    assert_eq!(value_of(&tree, &[("x", "2.0")]).as_deref(), Ok("line1"));
    assert_eq!(value_of(&tree, &[("x", "3.50")]).as_deref(), Ok("line1"));
    assert!(matches!(
        value_of(&tree, &[("x", "bronze")]),
        Err(EvalError::NoMatchingLine { .. })
    ));
    assert!(matches!(
        value_of(&tree, &[("x", "4")]),
        Err(EvalError::NoMatchingLine { .. })
    ));
}

#[test]
fn the_first_matching_line_in_declared_order_wins() {
    let tree = single_stem(&[(LineOp::Ge, "18"), (LineOp::Ge, "60")]);
    assert_eq!(value_of(&tree, &[("x", "70")]).as_deref(), Ok("line0"));
}

fn build(root: i64, nodes: Vec<Node>, lines: Vec<Line>) -> Result<RuleTree, TreeError> {
    RuleTree::new(tid(), "bad", NodeId(root), nodes, lines)
}

#[test]
fn validation_names_the_offending_node_or_line() {
    let fruit = || Node::fruit(2, "v");
    let eq = || line(1, 2, LineOp::Eq, "a");

    assert_eq!(
        build(
            1,
            vec![Node::stem(1, "x"), fruit(), Node::fruit(2, "w")],
            vec![eq()]
        ),
        Err(TreeError::DuplicateNode(NodeId(2)))
    );
    assert_eq!(
        build(9, vec![Node::stem(1, "x"), fruit()], vec![eq()]),
        Err(TreeError::UnknownRoot(NodeId(9)))
    );
    assert_eq!(
        build(
            1,
            vec![Node::stem(1, "x"), Node::stem(2, "y")],
            vec![eq(), line(2, 1, LineOp::Eq, "b")]
        ),
        Err(TreeError::RootIsTarget {
            root: NodeId(1),
            line: at(1, 2, 1)
        })
    );
    assert_eq!(
        build(
            1,
            vec![Node::stem(1, "x"), fruit()],
            vec![eq(), line(7, 2, LineOp::Eq, "b")]
        ),
        Err(TreeError::UnknownLineSource { line: at(1, 7, 2) })
    );
    assert_eq!(
        build(
            1,
            vec![Node::stem(1, "x"), fruit()],
            vec![line(1, 8, LineOp::Eq, "a")]
        ),
        Err(TreeError::UnknownLineTarget { line: at(0, 1, 8) })
    );
    assert_eq!(
        build(
            1,
            vec![Node::stem(1, "x"), fruit(), Node::fruit(3, "w")],
            vec![eq(), line(2, 3, LineOp::Eq, "b")]
        ),
        Err(TreeError::LineFromFruit { line: at(1, 2, 3) })
    );
    assert_eq!(
        build(1, vec![Node::stem(1, " "), fruit()], vec![eq()]),
        Err(TreeError::EmptyRuleKey(NodeId(1)))
    );
    assert_eq!(
        build(1, vec![Node::stem(1, "x"), Node::fruit(2, "")], vec![eq()]),
        Err(TreeError::EmptyFruitValue(NodeId(2)))
    );
    assert_eq!(
        build(1, vec![Node::stem(1, "x"), Node::stem(2, "y")], vec![eq()]),
        Err(TreeError::StemWithoutLines(NodeId(2)))
    );
    assert_eq!(
        build(
            1,
            vec![Node::stem(1, "x"), fruit()],
            vec![line(1, 2, LineOp::Enum, " ")]
        ),
        Err(TreeError::EmptyEnumList {
            line: at(0, 1, 2),
            list: " ".into()
        })
    );
    assert_eq!(
        build(
            1,
            vec![Node::stem(1, "x"), fruit()],
            vec![line(1, 2, LineOp::Enum, "a,,b")]
        ),
        Err(TreeError::BlankEnumItem {
            line: at(0, 1, 2),
            list: "a,,b".into()
        })
    );
    // 1 -> 2 -> 3 -> 2: the third line closes the cycle.
    assert_eq!(
        build(
            1,
            vec![
                Node::stem(1, "x"),
                Node::stem(2, "y"),
                Node::stem(3, "z"),
                Node::fruit(4, "v")
            ],
            vec![
                line(1, 2, LineOp::Eq, "a"),
                line(2, 3, LineOp::Eq, "b"),
                line(3, 2, LineOp::Eq, "c"),
                line(3, 4, LineOp::Eq, "d"),
            ]
        ),
        Err(TreeError::Cycle { line: at(2, 3, 2) })
    );
    assert_eq!(
        build(1, vec![Node::stem(1, "x"), Node::stem(1, "x")], vec![]),
        Err(TreeError::DuplicateNode(NodeId(1)))
    );
    assert_eq!(
        build(
            1,
            vec![Node::stem(1, "x"), fruit(), Node::fruit(3, "orphan")],
            vec![eq()]
        ),
        Err(TreeError::Unreachable(NodeId(3)))
    );
    // An unreachable loop is reported as unreachable.
    assert_eq!(
        build(
            1,
            vec![
                Node::stem(1, "x"),
                fruit(),
                Node::stem(5, "p"),
                Node::stem(6, "q")
            ],
            vec![
                eq(),
                line(5, 6, LineOp::Eq, "a"),
                line(6, 5, LineOp::Eq, "b")
            ]
        ),
        Err(TreeError::Unreachable(NodeId(5)))
    );
    assert_eq!(
        build(1, vec![], vec![]),
        Err(TreeError::UnknownRoot(NodeId(1)))
    );
}

#[test]
fn errors_read_clearly() {
    let err = TreeError::Cycle { line: at(2, 3, 2) };
    assert_eq!(
        err.to_string(),
        "line #2 (3 -> 2) closes a cycle back to node 2"
    );
    let err = EvalError::NoMatchingLine {
        node: NodeId(1),
        key: "gender".into(),
        value: "x".into(),
    };
    assert_eq!(
        err.to_string(),
        "no line from node 1 accepts gender = \"x\""
    );
}

#[test]
fn a_single_fruit_is_a_tree() {
    let tree = build(7, vec![Node::fruit(7, "always")], vec![]).expect("valid");
    assert_eq!(
        tree.evaluate(&Facts::new()).map(|d| d.value).as_deref(),
        Ok("always")
    );
}

#[test]
fn deep_trees_build_without_recursion() {
    const DEPTH: i64 = 50_000;
    let mut nodes: Vec<Node> = (0..DEPTH).map(|i| Node::stem(i, "n")).collect();
    nodes.push(Node::fruit(DEPTH, "bottom"));
    let lines = (0..DEPTH)
        .map(|i| line(i, i + 1, LineOp::Ge, "0"))
        .collect();
    let tree = build(0, nodes, lines).expect("valid chain");
    assert_eq!(tree.depth(), DEPTH as usize + 1);
    let decision = tree
        .evaluate(&facts(&[("n", "1")]))
        .expect("reaches the bottom");
    assert_eq!(decision.path.len(), DEPTH as usize + 1);
}

#[test]
fn line_ops_parse_and_serialise_in_lower_case() {
    assert_eq!("EQ".parse::<LineOp>(), Ok(LineOp::Eq));
    assert_eq!("enum".parse::<LineOp>(), Ok(LineOp::Enum));
    assert_eq!("Ge".parse::<LineOp>(), Ok(LineOp::Ge));
    assert_eq!(
        "ne".parse::<LineOp>(),
        Err(TreeError::UnknownOp("ne".into()))
    );
    assert_eq!(serde_json::to_string(&LineOp::Le).expect("json"), "\"le\"");
    assert_eq!(
        serde_json::from_str::<LineOp>("\"gt\"").expect("json"),
        LineOp::Gt
    );
}

#[test]
fn trees_round_trip_through_their_parts() {
    let tree = reference();
    let json = serde_json::to_value(&tree).expect("serialise");
    assert_eq!(json["root"], serde_json::json!(1));
    assert_eq!(
        json["nodes"][0],
        serde_json::json!({ "id": 1, "kind": "stem", "rule_key": "gender" })
    );
    assert_eq!(
        json["lines"][0],
        serde_json::json!({ "from": 1, "to": 11, "op": "eq", "value": "man" })
    );
    let back: RuleTree = serde_json::from_value(json.clone()).expect("valid tree");
    assert_eq!(back, tree);

    let spec: RuleTreeSpec = tree.clone().into_spec();
    assert_eq!(RuleTree::from_spec(spec.clone()), Ok(tree));

    // Stored data is validated again on the way back in.
    let mut broken = spec;
    broken.lines.pop();
    let json = serde_json::to_value(&broken).expect("serialise");
    assert!(serde_json::from_value::<RuleTree>(json).is_err());
}

fn fact_value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("man".to_owned()),
        Just("woman".to_owned()),
        any::<i64>().prop_map(|n| n.to_string()),
        (-1000i64..1000, 0u32..4)
            .prop_map(|(n, scale)| { rust_decimal::Decimal::new(n, scale).to_string() }),
        "\\PC{0,12}",
    ]
}

proptest! {
    #[test]
    fn random_facts_never_panic(
        gender in proptest::option::of(fact_value()),
        age in proptest::option::of(fact_value()),
        extra in fact_value(),
    ) {
        let tree = reference();
        let mut facts = Facts::new().with("extra", extra);
        if let Some(g) = &gender {
            facts.insert("gender", g.clone());
        }
        if let Some(a) = &age {
            facts.insert("age", a.clone());
        }
        match tree.evaluate(&facts) {
            Ok(d) => {
                prop_assert!(["100001", "100002", "100003", "100004"].contains(&d.value.as_str()));
                prop_assert_eq!(d.path.len(), 3);
            }
            Err(EvalError::MissingFact { key, .. }) => {
                prop_assert!(
                    (key == "gender" && gender.is_none()) || (key == "age" && age.is_none())
                );
            }
            Err(EvalError::NoMatchingLine { key, value, .. }) => {
                prop_assert_eq!(key, "gender");
                prop_assert!(value != "man" && value != "woman");
            }
        }
    }
}
