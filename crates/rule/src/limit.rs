use std::cmp::Ordering;
use std::str::FromStr;

use rust_decimal::Decimal;

use crate::model::LineOp;

/// Reads text as a decimal number, if it is one. Decimal (not float) so that "25" equals "25.0"
/// exactly and no NaN can make a comparison meaningless.
pub(crate) fn number(text: &str) -> Option<Decimal> {
    let t = text.trim();
    if t.is_empty() {
        return None;
    }
    Decimal::from_str(t).ok()
}

/// One operand of a limit, parsed once when the tree is built.
#[derive(Debug, Clone)]
pub(crate) struct Operand {
    text: String,
    num: Option<Decimal>,
}

impl Operand {
    pub(crate) fn new(text: &str) -> Self {
        Self {
            text: text.to_owned(),
            num: number(text),
        }
    }

    /// Orders the fact against this operand: numerically when both are numbers, else as text.
    fn compare(&self, fact: &str, fact_num: Option<Decimal>) -> Ordering {
        match (fact_num, self.num) {
            (Some(a), Some(b)) => a.cmp(&b),
            _ => fact.cmp(&self.text),
        }
    }
}

/// A line's limit in a form that needs no parsing or allocation during evaluation.
#[derive(Debug, Clone)]
pub(crate) enum Limit {
    Compare(LineOp, Operand),
    OneOf(Vec<Operand>),
}

/// Why an enum list was refused.
#[derive(Debug)]
pub(crate) enum EnumListError {
    Empty,
    BlankItem,
}

impl Limit {
    pub(crate) fn new(op: LineOp, value: &str) -> Result<Self, EnumListError> {
        if op != LineOp::Enum {
            return Ok(Self::Compare(op, Operand::new(value)));
        }
        if value.trim().is_empty() {
            return Err(EnumListError::Empty);
        }
        let items = value
            .split(',')
            .map(str::trim)
            .map(|item| {
                if item.is_empty() {
                    Err(EnumListError::BlankItem)
                } else {
                    Ok(item)
                }
            })
            .map(|item| item.map(Operand::new))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self::OneOf(items))
    }

    /// `fact_num` is `number(fact)`, computed once per stem by the caller.
    pub(crate) fn matches(&self, fact: &str, fact_num: Option<Decimal>) -> bool {
        match self {
            Self::Compare(op, operand) => {
                let ord = operand.compare(fact, fact_num);
                match op {
                    LineOp::Eq => ord == Ordering::Equal,
                    LineOp::Gt => ord == Ordering::Greater,
                    LineOp::Lt => ord == Ordering::Less,
                    LineOp::Ge => ord != Ordering::Less,
                    LineOp::Le => ord != Ordering::Greater,
                    // Enum limits are always built as `OneOf`.
                    LineOp::Enum => false,
                }
            }
            Self::OneOf(items) => {
                // Items are trimmed, so the fact is too for textual membership.
                let trimmed = fact.trim();
                items
                    .iter()
                    .any(|item| item.compare(trimmed, fact_num) == Ordering::Equal)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn holds(op: LineOp, limit: &str, fact: &str) -> bool {
        let limit = Limit::new(op, limit).expect("valid limit");
        limit.matches(fact, number(fact))
    }

    #[test]
    fn numbers_compare_by_value() {
        assert!(holds(LineOp::Eq, "25", "25.0"));
        assert!(holds(LineOp::Eq, "1000", "1e+3"));
        assert!(holds(LineOp::Lt, "10", "9"));
        assert!(holds(LineOp::Ge, "25", "25"));
        assert!(holds(LineOp::Le, "-1", "-1.5"));
        assert!(!holds(LineOp::Gt, "10", "9"));
    }

    #[test]
    fn text_compares_lexicographically() {
        assert!(holds(LineOp::Lt, "banana", "apple"));
        // One side is not a number, so "9" and "10x" compare as text: '9' > '1'.
        assert!(holds(LineOp::Gt, "10x", "9"));
        assert!(holds(LineOp::Eq, "man", "man"));
        assert!(!holds(LineOp::Eq, "man", "Man"));
    }

    #[test]
    fn enum_membership_trims_and_compares_numbers() {
        assert!(holds(LineOp::Enum, "gold, silver", "silver"));
        assert!(holds(LineOp::Enum, "gold, silver", " gold "));
        assert!(!holds(LineOp::Enum, "gold, silver", "bronze"));
        assert!(holds(LineOp::Enum, "1, 2.50, 3", "2.5"));
        assert!(matches!(
            Limit::new(LineOp::Enum, " , "),
            Err(EnumListError::BlankItem)
        ));
        assert!(matches!(
            Limit::new(LineOp::Enum, "  "),
            Err(EnumListError::Empty)
        ));
    }
}
