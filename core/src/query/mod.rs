//! The query language of GET/COUNT/PUT/PATCH/DELETE, and ORDER, FIELDS and
//! LIMIT (spec `shared/spec/protocol.md`, section 3).
//!
//! # QUERY
//!
//! A JSON object. Each key is a (possibly dotted) field path, or `$and`/`$or`;
//! all keys must hold.
//!
//! * `{"field": value}` — the field is present and deeply equal to `value`.
//!   Numbers compare numerically (`1 == 1.0`); there is no array-contains
//!   magic; a missing field equals nothing, not even `null`.
//! * `{"field": {"$op": argument, ...}}` — every key starts with `$`; all
//!   operators must hold: `$eq $ne $gt $gte $lt $lte $in $nin $exists $null`.
//!   `$gt`/`$gte`/`$lt`/`$lte` are false across JSON types; `$ne`/`$nin` are
//!   true for a missing field. An object with no `$` keys is a literal; one
//!   mixing both is an error.
//! * `{"$and": [q, ...]}`, `{"$or": [q, ...]}` — non-empty arrays of queries.
//!
//! [`Query::parse`] validates everything (errors name the offending operator
//! or field), [`Query::matches`] evaluates without allocating, and
//! [`Query::index_predicates`] says what a secondary index can answer.
//!
//! # Values, ORDER, FIELDS, LIMIT
//!
//! [`compare_json`] is the protocol's total order over JSON values, used by
//! [`Order`] and by the comparison operators; [`lookup`] resolves dotted
//! paths; [`Fields`] projects documents; [`parse_limit`] validates LIMIT.
//!
//! Layout: `parse` builds the `ast`, `eval` runs it, `plan` extracts index
//! predicates; `path`, `value_order` and `value_set` are the shared pieces.

mod ast;
mod error;
mod eval;
mod fields;
mod limit;
mod order;
mod parse;
mod path;
mod plan;
mod value_order;
mod value_set;

pub use ast::Query;
pub use error::{json_type_name, QueryError};
pub use fields::{Fields, MAX_FIELD_SEGMENTS};
pub use limit::parse_limit;
pub use order::{Direction, Order, OrderTerm};
pub use parse::MAX_QUERY_DEPTH;
pub use path::lookup;
pub use plan::IndexPredicate;
pub use value_order::compare_json;
