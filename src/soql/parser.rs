//! Recursive-descent SOQL parser: SELECT, FROM, WHERE, GROUP BY, ORDER BY, LIMIT, OFFSET,
//! relationship paths, child subqueries, aggregates and relative date literals.

use super::ast::*;
use super::error::{ErrorCode, SoqlError};
use super::lexer::{tokenize, Token, TokenKind};

/// Parses a complete SOQL query.
pub fn parse(query: &str) -> Result<Query, SoqlError> {
    let tokens = tokenize(query)?;
    let mut parser = Parser {
        query,
        tokens,
        pos: 0,
        depth: 0,
    };
    let parsed = parser.query()?;
    parser.expect_end()?;
    Ok(parsed)
}

/// Parses a bare condition, as written in a pipeline's `where:`.
pub fn parse_condition(text: &str) -> Result<Condition, SoqlError> {
    let tokens = tokenize(text)?;
    let mut parser = Parser {
        query: text,
        tokens,
        pos: 0,
        depth: 0,
    };
    let condition = parser.condition()?;
    parser.expect_end()?;
    Ok(condition)
}

/// Words that end a clause, so they can never be an alias.
const CLAUSE_WORDS: &[&str] = &[
    "SELECT",
    "FROM",
    "WHERE",
    "WITH",
    "GROUP",
    "HAVING",
    "ORDER",
    "LIMIT",
    "OFFSET",
    "FOR",
    "USING",
    "AND",
    "OR",
    "NOT",
    "ASC",
    "DESC",
    "NULLS",
    "BY",
    "IN",
    "LIKE",
    "INCLUDES",
    "EXCLUDES",
    "UPDATE",
    "VIEW",
    "REFERENCE",
];

const AGGREGATES: &[(&str, AggregateFunction)] = &[
    ("COUNT", AggregateFunction::Count),
    ("COUNT_DISTINCT", AggregateFunction::CountDistinct),
    ("SUM", AggregateFunction::Sum),
    ("AVG", AggregateFunction::Avg),
    ("MIN", AggregateFunction::Min),
    ("MAX", AggregateFunction::Max),
];

/// Functions that wrap a field in the SELECT list without aggregating it.
const FIELD_FUNCTIONS: &[&str] = &["TOLABEL", "FORMAT", "CONVERTCURRENCY"];

/// Relative date literals without an argument.
const DATE_LITERALS: &[&str] = &[
    "YESTERDAY",
    "TODAY",
    "TOMORROW",
    "LAST_WEEK",
    "THIS_WEEK",
    "NEXT_WEEK",
    "LAST_MONTH",
    "THIS_MONTH",
    "NEXT_MONTH",
    "LAST_90_DAYS",
    "NEXT_90_DAYS",
    "THIS_QUARTER",
    "LAST_QUARTER",
    "NEXT_QUARTER",
    "THIS_YEAR",
    "LAST_YEAR",
    "NEXT_YEAR",
    "THIS_FISCAL_QUARTER",
    "LAST_FISCAL_QUARTER",
    "NEXT_FISCAL_QUARTER",
    "THIS_FISCAL_YEAR",
    "LAST_FISCAL_YEAR",
    "NEXT_FISCAL_YEAR",
];

/// Relative date literals that take `:n`.
const DATE_LITERALS_N: &[&str] = &[
    "LAST_N_DAYS",
    "NEXT_N_DAYS",
    "N_DAYS_AGO",
    "LAST_N_WEEKS",
    "NEXT_N_WEEKS",
    "N_WEEKS_AGO",
    "LAST_N_MONTHS",
    "NEXT_N_MONTHS",
    "N_MONTHS_AGO",
    "LAST_N_QUARTERS",
    "NEXT_N_QUARTERS",
    "N_QUARTERS_AGO",
    "LAST_N_YEARS",
    "NEXT_N_YEARS",
    "N_YEARS_AGO",
    "LAST_N_FISCAL_QUARTERS",
    "NEXT_N_FISCAL_QUARTERS",
    "N_FISCAL_QUARTERS_AGO",
    "LAST_N_FISCAL_YEARS",
    "NEXT_N_FISCAL_YEARS",
    "N_FISCAL_YEARS_AGO",
];

/// How deeply conditions (parentheses, NOT) and subqueries may nest. Far beyond any real query,
/// and far below what would overflow the stack of this recursive parser.
const MAX_NESTING: usize = 200;

struct Parser<'q> {
    query: &'q str,
    tokens: Vec<Token>,
    pos: usize,
    /// Nesting of conditions and subqueries at this point.
    depth: usize,
}

impl<'q> Parser<'q> {
    fn peek(&self) -> &Token {
        &self.tokens[self.pos]
    }

    fn peek_at(&self, ahead: usize) -> &Token {
        let last = self.tokens.len() - 1;
        &self.tokens[(self.pos + ahead).min(last)]
    }

    fn next(&mut self) -> Token {
        let token = self.tokens[self.pos].clone();
        if self.pos < self.tokens.len() - 1 {
            self.pos += 1;
        }
        token
    }

    fn at_keyword(&self, keyword: &str) -> bool {
        self.peek().is_keyword(keyword)
    }

    fn eat_keyword(&mut self, keyword: &str) -> bool {
        if self.at_keyword(keyword) {
            self.next();
            true
        } else {
            false
        }
    }

    fn eat(&mut self, kind: &TokenKind) -> bool {
        if &self.peek().kind == kind {
            self.next();
            true
        } else {
            false
        }
    }

    /// `unexpected token: 'X'` at the current token, with what was expected as a hint.
    fn unexpected(&self, expected: &str) -> SoqlError {
        let token = self.peek();
        let text = if token.kind == TokenKind::Eof {
            "unexpected token: <EOF>".to_string()
        } else {
            format!("unexpected token: '{}'", token.text(self.query))
        };
        SoqlError::new(ErrorCode::MalformedQuery, text, token.span.start)
            .with_hint(format!("expected {expected}"))
    }

    fn expect_keyword(&mut self, keyword: &str) -> Result<(), SoqlError> {
        if self.eat_keyword(keyword) {
            Ok(())
        } else {
            Err(self.unexpected(keyword))
        }
    }

    fn expect(&mut self, kind: TokenKind, what: &str) -> Result<Token, SoqlError> {
        if self.peek().kind == kind {
            Ok(self.next())
        } else {
            Err(self.unexpected(what))
        }
    }

    fn expect_end(&mut self) -> Result<(), SoqlError> {
        if self.peek().kind == TokenKind::Eof {
            Ok(())
        } else {
            Err(self.unexpected("the end of the query"))
        }
    }

    fn is_clause_word(token: &Token) -> bool {
        CLAUSE_WORDS.iter().any(|w| token.is_keyword(w))
    }

    /// Runs `parse` one nesting level deeper, refusing queries nested beyond `MAX_NESTING`.
    fn nested<T>(
        &mut self,
        parse: impl FnOnce(&mut Self) -> Result<T, SoqlError>,
    ) -> Result<T, SoqlError> {
        if self.depth >= MAX_NESTING {
            return Err(SoqlError::new(
                ErrorCode::MalformedQuery,
                format!(
                    "the query nests more than {MAX_NESTING} levels of parentheses, NOT or subqueries"
                ),
                self.peek().span.start,
            )
            .with_hint("write the condition with fewer nested levels"));
        }
        self.depth += 1;
        let parsed = parse(self);
        self.depth -= 1;
        parsed
    }

    fn query(&mut self) -> Result<Query, SoqlError> {
        self.nested(Self::query_at_depth)
    }

    fn query_at_depth(&mut self) -> Result<Query, SoqlError> {
        self.expect_keyword("SELECT")?;
        let select = self.select_list()?;
        self.expect_keyword("FROM")?;
        let from = self.parse_from()?;
        let mut where_clause = None;
        let mut group_by = Vec::new();
        let mut order_by = Vec::new();
        let mut limit = None;
        let mut offset = None;
        if self.eat_keyword("USING") {
            self.expect_keyword("SCOPE")?;
            self.word("a filter scope")?;
        }
        if self.eat_keyword("WHERE") {
            where_clause = Some(self.condition()?);
        }
        if self.eat_keyword("WITH") {
            // WITH SECURITY_ENFORCED / USER_MODE / SYSTEM_MODE change permissions, not rows.
            self.word("SECURITY_ENFORCED, USER_MODE or SYSTEM_MODE")?;
        }
        if self.eat_keyword("GROUP") {
            self.expect_keyword("BY")?;
            loop {
                group_by.push(self.field_path()?);
                if !self.eat(&TokenKind::Comma) {
                    break;
                }
            }
        }
        if self.at_keyword("HAVING") {
            return Err(self
                .unexpected("ORDER BY, LIMIT or the end of the query")
                .with_hint("HAVING is not supported by this tool; filter in WHERE instead"));
        }
        if self.eat_keyword("ORDER") {
            self.expect_keyword("BY")?;
            loop {
                order_by.push(self.order_item()?);
                if !self.eat(&TokenKind::Comma) {
                    break;
                }
            }
        }
        if self.eat_keyword("LIMIT") {
            limit = Some(self.integer("a row count after LIMIT")?);
        }
        if self.eat_keyword("OFFSET") {
            offset = Some(self.integer("a row count after OFFSET")?);
        }
        if self.eat_keyword("FOR")
            && !(self.eat_keyword("VIEW")
                || self.eat_keyword("REFERENCE")
                || self.eat_keyword("UPDATE"))
        {
            return Err(self.unexpected("VIEW, REFERENCE or UPDATE"));
        }
        Ok(Query {
            select,
            from,
            where_clause,
            group_by,
            order_by,
            limit,
            offset,
        })
    }

    fn word(&mut self, what: &str) -> Result<(String, Token), SoqlError> {
        match &self.peek().kind {
            TokenKind::Word(w) => {
                let w = w.clone();
                Ok((w, self.next()))
            }
            _ => Err(self.unexpected(what)),
        }
    }

    fn integer(&mut self, what: &str) -> Result<u64, SoqlError> {
        if let TokenKind::Number(n) = &self.peek().kind {
            if let Ok(value) = n.parse::<u64>() {
                self.next();
                return Ok(value);
            }
        }
        Err(self.unexpected(what))
    }

    fn select_list(&mut self) -> Result<Vec<SelectItem>, SoqlError> {
        let mut items = Vec::new();
        loop {
            items.push(self.select_item()?);
            if !self.eat(&TokenKind::Comma) {
                break;
            }
        }
        Ok(items)
    }

    fn select_item(&mut self) -> Result<SelectItem, SoqlError> {
        let start = self.peek().span.start;
        if self.peek().kind == TokenKind::LParen {
            self.next();
            if !self.at_keyword("SELECT") {
                return Err(self.unexpected("SELECT to start a subquery"));
            }
            let query = self.query()?;
            let close = self.expect(TokenKind::RParen, "')' to close the subquery")?;
            return Ok(SelectItem::SubQuery {
                query: Box::new(query),
                span: Span {
                    start,
                    end: close.span.end,
                },
            });
        }
        if Self::is_clause_word(self.peek()) || !matches!(self.peek().kind, TokenKind::Word(_)) {
            return Err(self.unexpected("a field name"));
        }
        if self.peek_at(1).kind == TokenKind::LParen {
            let (name, _) = self.word("a function")?;
            self.next(); // (
            let upper = name.to_ascii_uppercase();
            if let Some((_, function)) = AGGREGATES.iter().find(|(n, _)| *n == upper) {
                let field = if self.peek().kind == TokenKind::RParen {
                    None
                } else {
                    Some(self.field_path()?)
                };
                let close = self.expect(TokenKind::RParen, "')'")?;
                let alias = self.alias();
                return Ok(SelectItem::Aggregate {
                    function: *function,
                    field,
                    alias,
                    span: Span {
                        start,
                        end: close.span.end,
                    },
                });
            }
            if FIELD_FUNCTIONS.contains(&upper.as_str()) {
                let field = self.field_path()?;
                self.expect(TokenKind::RParen, "')'")?;
                let alias = self.alias();
                return Ok(SelectItem::Field { field, alias });
            }
            return Err(SoqlError::new(
                ErrorCode::MalformedQuery,
                format!("Unknown function {name}"),
                start,
            )
            .with_hint(
                "use COUNT, COUNT_DISTINCT, SUM, AVG, MIN, MAX, toLabel, FORMAT or convertCurrency",
            ));
        }
        let field = self.field_path()?;
        Ok(SelectItem::Field { field, alias: None })
    }

    fn alias(&mut self) -> Option<String> {
        match &self.peek().kind {
            TokenKind::Word(w) if !Self::is_clause_word(self.peek()) => {
                let w = w.clone();
                self.next();
                Some(w)
            }
            _ => None,
        }
    }

    fn parse_from(&mut self) -> Result<FromClause, SoqlError> {
        if Self::is_clause_word(self.peek()) {
            return Err(self.unexpected("an object name after FROM"));
        }
        let (object, token) = self.word("an object name after FROM")?;
        let alias = self.alias();
        Ok(FromClause {
            object,
            alias,
            span: token.span,
        })
    }

    /// `Name`, `Account.Owner.Email`
    fn field_path(&mut self) -> Result<FieldRef, SoqlError> {
        if Self::is_clause_word(self.peek()) {
            return Err(self.unexpected("a field name"));
        }
        let (first, token) = self.word("a field name")?;
        let mut path = vec![first];
        let mut span = token.span;
        while self.peek().kind == TokenKind::Dot {
            self.next();
            let (segment, token) = self.word("a field name after '.'")?;
            path.push(segment);
            span.end = token.span.end;
        }
        Ok(FieldRef { path, span })
    }

    fn operand(&mut self) -> Result<Operand, SoqlError> {
        let start = self.peek().span.start;
        if matches!(self.peek().kind, TokenKind::Word(_))
            && self.peek_at(1).kind == TokenKind::LParen
        {
            let (name, _) = self.word("a function")?;
            self.next();
            let field = self.field_path()?;
            let close = self.expect(TokenKind::RParen, "')'")?;
            return Ok(Operand::Function {
                name,
                field,
                span: Span {
                    start,
                    end: close.span.end,
                },
            });
        }
        Ok(Operand::Field(self.field_path()?))
    }

    fn order_item(&mut self) -> Result<OrderItem, SoqlError> {
        let operand = self.operand()?;
        let descending = if self.eat_keyword("DESC") {
            true
        } else {
            self.eat_keyword("ASC");
            false
        };
        let nulls_last = if self.eat_keyword("NULLS") {
            if self.eat_keyword("LAST") {
                Some(true)
            } else if self.eat_keyword("FIRST") {
                Some(false)
            } else {
                return Err(self.unexpected("FIRST or LAST after NULLS"));
            }
        } else {
            None
        };
        Ok(OrderItem {
            operand,
            descending,
            nulls_last,
        })
    }

    /// Conditions joined by one kind of connective; SOQL needs parentheses to mix AND and OR.
    fn condition(&mut self) -> Result<Condition, SoqlError> {
        let first = self.unary_condition()?;
        let connective = if self.at_keyword("AND") {
            "AND"
        } else if self.at_keyword("OR") {
            "OR"
        } else {
            return Ok(first);
        };
        let other = if connective == "AND" { "OR" } else { "AND" };
        let mut parts = vec![first];
        while self.eat_keyword(connective) {
            parts.push(self.unary_condition()?);
        }
        if self.at_keyword(other) {
            return Err(self
                .unexpected(connective)
                .with_hint("SOQL needs parentheses to mix AND and OR, e.g. (A AND B) OR C"));
        }
        Ok(if connective == "AND" {
            Condition::And(parts)
        } else {
            Condition::Or(parts)
        })
    }

    fn unary_condition(&mut self) -> Result<Condition, SoqlError> {
        self.nested(Self::unary_condition_at_depth)
    }

    fn unary_condition_at_depth(&mut self) -> Result<Condition, SoqlError> {
        if self.eat_keyword("NOT") {
            return Ok(Condition::Not(Box::new(self.unary_condition()?)));
        }
        if self.peek().kind == TokenKind::LParen {
            self.next();
            let inner = self.condition()?;
            self.expect(TokenKind::RParen, "')'")?;
            return Ok(inner);
        }
        self.comparison()
    }

    fn comparison(&mut self) -> Result<Condition, SoqlError> {
        let left = self.operand()?;
        let op = match self.peek().kind {
            TokenKind::Eq => Some(CompareOp::Eq),
            TokenKind::NotEq => Some(CompareOp::NotEq),
            TokenKind::Lt => Some(CompareOp::Lt),
            TokenKind::LtEq => Some(CompareOp::LtEq),
            TokenKind::Gt => Some(CompareOp::Gt),
            TokenKind::GtEq => Some(CompareOp::GtEq),
            _ if self.at_keyword("LIKE") => Some(CompareOp::Like),
            _ => None,
        };
        if let Some(op) = op {
            self.next();
            let value_span = self.peek().span;
            let value = self.value()?;
            return Ok(Condition::Compare {
                left,
                op,
                value,
                value_span,
            });
        }
        let negated = if self.at_keyword("NOT") && self.peek_at(1).is_keyword("IN") {
            self.next();
            true
        } else {
            false
        };
        if self.eat_keyword("IN") {
            self.expect(TokenKind::LParen, "'(' after IN")?;
            if self.at_keyword("SELECT") {
                let query = self.query()?;
                self.expect(TokenKind::RParen, "')'")?;
                return Ok(Condition::InSubQuery {
                    left,
                    negated,
                    query: Box::new(query),
                });
            }
            let values = self.value_list()?;
            return Ok(Condition::In {
                left,
                negated,
                values,
            });
        }
        let excludes = self.at_keyword("EXCLUDES");
        if self.eat_keyword("INCLUDES") || self.eat_keyword("EXCLUDES") {
            self.expect(TokenKind::LParen, "'(' after INCLUDES")?;
            let mut values = Vec::new();
            loop {
                match self.next() {
                    Token {
                        kind: TokenKind::String(s),
                        ..
                    } => values.push(s),
                    _ => {
                        self.pos -= 1;
                        return Err(self.unexpected("a quoted picklist value"));
                    }
                }
                if !self.eat(&TokenKind::Comma) {
                    break;
                }
            }
            self.expect(TokenKind::RParen, "')'")?;
            return Ok(Condition::Includes {
                left,
                excludes,
                values,
            });
        }
        Err(self
            .unexpected("an operator (=, !=, <, <=, >, >=, LIKE, IN, NOT IN, INCLUDES, EXCLUDES)"))
    }

    fn value_list(&mut self) -> Result<Vec<Value>, SoqlError> {
        let mut values = Vec::new();
        loop {
            values.push(self.value()?);
            if !self.eat(&TokenKind::Comma) {
                break;
            }
        }
        self.expect(TokenKind::RParen, "')'")?;
        Ok(values)
    }

    fn value(&mut self) -> Result<Value, SoqlError> {
        let token = self.peek().clone();
        let value = match &token.kind {
            TokenKind::String(s) => Value::String(s.clone()),
            TokenKind::Number(n) => Value::Number(n.clone()),
            TokenKind::Date(d) => Value::Date(d.clone()),
            TokenKind::DateTime(d) => Value::DateTime(d.clone()),
            TokenKind::Word(w) => {
                let upper = w.to_ascii_uppercase();
                match upper.as_str() {
                    "NULL" => Value::Null,
                    "TRUE" => Value::Bool(true),
                    "FALSE" => Value::Bool(false),
                    _ if DATE_LITERALS.contains(&upper.as_str()) => {
                        Value::Relative(DateLiteral { name: upper, n: None })
                    }
                    _ if DATE_LITERALS_N.contains(&upper.as_str()) => {
                        self.next();
                        self.expect(TokenKind::Colon, &format!("':n' after {upper}"))?;
                        let n = match &self.peek().kind {
                            TokenKind::Number(n) => n.parse::<i64>().ok(),
                            _ => None,
                        };
                        let Some(n) = n else {
                            return Err(self.unexpected(&format!("a whole number after {upper}:")));
                        };
                        self.next();
                        return Ok(Value::Relative(DateLiteral { name: upper, n: Some(n) }));
                    }
                    _ => return Err(self.unexpected("a value: a quoted string, number, date, TRUE, FALSE, NULL or a date literal such as TODAY")),
                }
            }
            _ => return Err(self.unexpected("a value: a quoted string, number, date, TRUE, FALSE, NULL or a date literal such as TODAY")),
        };
        self.next();
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_relationships_subqueries_and_clauses() {
        let q = parse("SELECT Id, Owner.Email, (SELECT Id FROM Attachments) FROM Account WHERE (Name LIKE 'A%' OR Type IN ('x','y')) AND CreatedDate >= LAST_N_DAYS:30 ORDER BY Name DESC NULLS LAST LIMIT 10 OFFSET 5").unwrap();
        assert_eq!(q.from.object, "Account");
        assert_eq!(q.select.len(), 3);
        assert_eq!(q.limit, Some(10));
        assert_eq!(q.offset, Some(5));
        assert_eq!(q.order_by[0].nulls_last, Some(true));
        let fields: Vec<String> = q.field_refs().iter().map(|f| f.dotted()).collect();
        assert_eq!(
            fields,
            ["Id", "Owner.Email", "Name", "Type", "CreatedDate", "Name"]
        );
    }

    #[test]
    fn count_only() {
        assert!(parse("select count() from Account")
            .unwrap()
            .is_count_only());
    }

    #[test]
    fn malformed_query_points_at_the_token() {
        let q = "SELECT Id FORM Account";
        let err = parse(q).unwrap_err();
        assert_eq!(err.code, ErrorCode::MalformedQuery);
        assert_eq!(err.text, "unexpected token: 'FORM'");
        assert_eq!(err.row_column(q), (1, 11));
        assert_eq!(
            err.salesforce_message(q),
            "\nSELECT Id FORM Account\n          ^\nERROR at Row:1:Column:11\nunexpected token: 'FORM'"
        );
    }

    #[test]
    fn mixing_and_or_needs_parentheses() {
        let err = parse_condition("A = 1 AND B = 2 OR C = 3").unwrap_err();
        assert_eq!(err.text, "unexpected token: 'OR'");
        assert_eq!(err.offset, 16);
    }

    #[test]
    fn multibyte_text_never_splits_a_character() {
        for query in [
            "SELECT Id FROM Account WHERE d = 2024-0é",
            "SELECT Id FROM Account WHERE Name = 'é' AND x = 2024-01-0é",
            "SELECT é FROM Account",
        ] {
            assert!(parse(query).is_err(), "{query}");
        }
    }

    #[test]
    fn eof_is_reported() {
        let err = parse("SELECT Id FROM").unwrap_err();
        assert_eq!(err.text, "unexpected token: <EOF>");
    }
}
