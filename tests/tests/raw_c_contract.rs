//! What `wit/worldline.wit` promises an author who writes a module in plain
//! C against the raw WIT (no SDK), checked with C modules built during the
//! test: descriptions the host must refuse at publish, naming what is
//! wrong; the datastore's answers to bad calls; cursor lifetimes,
//! auto-increment sequences, and the row quotas that bound what a module
//! can make the host hold.

use worldline_host::{CallContext, CallError, Database, Engine, EngineConfig, HostError};
use worldline_tests::raw_c::{c_component, one_at_a_time};
use worldline_tests::{OWNER, args, peak_resident_bytes, rows, test_engine_config};

/// The module. Arena: 0 `u64`, 1 `u32`, 2 the row `(id: u64, n: u64)`, 3
/// the empty product, 4 a struct `{x: u64, y: u64}`, 5 the row
/// `(id: u64, pos: 4)`, 6 `timestamp`, 7 the row `(at: 6, every: u64)`, 8
/// `string`, 9 `bool`, 10 a sum `{a, b(u64)}`, 11 the row
/// `(name: string, flag: bool, state: 10)`.
///
/// Tables: `item` (row 2; primary key on `id`, a btree index `by_n`),
/// `nothing` (no columns, no indexes), `seq` (row 2; `id` auto-increment
/// and the primary key, `n` a unique index `by_n`) and `mixed` (row 11,
/// no indexes).
///
/// Reducers, each taking `n: u32`: `fill_nothing` inserts `n` rows into
/// `nothing`; `fail_then_insert` makes `n` inserts of a 1 KiB row that
/// does not decode (each must fail with `invalid-row`), then inserts the
/// item `(1, 1)`; `move_then_insert` inserts `(0, 10)` into `seq` (it gets
/// id 1), updates it by `n` to `(5, 10)`, then inserts `n` rows
/// `(0, 11 + i)`, failing with the first error's message; `keep_cursor`
/// inserts `n` rows into `nothing` and keeps a cursor over `item` in a
/// global; `stale_cursor` inserts `n` rows into `nothing`, opens a cursor
/// over it, then reads from the kept cursor and fails, saying how many
/// rows it got; `bad_calls` makes the calls of
/// [`the_datastore_answers_bad_calls_as_the_wit_says`] and fails with the
/// first answer that is not the one expected.
///
/// `SCHEMA` (a preprocessor define) changes the description: 1 an empty
/// column name, 2 a table name with control characters, 3 `item`'s row 5
/// with two fields of `pos` named `x`, 4 `item`'s row 5 with `pos` a sum
/// of two cases named `a`, 5 a reducer with two parameters named `n`, 6 a
/// table `tick` (row 7, `at` the primary key) scheduling a reducer `run`
/// every `every` microseconds, 7 a column name holding U+202E
/// (right-to-left override), 8 `item`'s row type the type reference 99, 9
/// `fail_then_insert`'s parameter of type 99; 10 a table `units`
/// (`id: u64` the primary key, `units: array(())` with a btree index) and
/// a reducer `fill_units` inserting `n` rows of 65,536 units each; 11 the
/// same with `units: array(u8)`, `fill_units` inserting `n` rows of 65,536
/// bytes each.
const SOURCE: &str = r#"
#include "module.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef SCHEMA
#define SCHEMA 0
#endif

typedef worldline_module_types_type_node_t node_t;
typedef worldline_module_types_field_t field_t;

static module_string_t S(const char *s) { module_string_t m; module_string_dup(&m, s); return m; }
static node_t prim(uint8_t tag) { node_t n; memset(&n, 0, sizeof n); n.tag = tag; return n; }
static worldline_module_types_list_field_t fields(size_t n, const char **names, const uint32_t *tys) {
  worldline_module_types_list_field_t list = {calloc(n ? n : 1, sizeof(field_t)), n};
  for (size_t i = 0; i < n; i++) {
    list.ptr[i].name.is_some = true; list.ptr[i].name.val = S(names[i]);
    list.ptr[i].ty = tys[i];
  }
  return list;
}
static node_t product(size_t n, const char **names, const uint32_t *tys) {
  node_t p = prim(WORLDLINE_MODULE_TYPES_TYPE_NODE_PRODUCT);
  p.val.product = fields(n, names, tys);
  return p;
}
static worldline_module_types_table_def_t table(const char *name, uint32_t row_type, int pk) {
  worldline_module_types_table_def_t t; memset(&t, 0, sizeof t);
  t.name = S(name); t.row_type = row_type; t.public_ = true;
  if (pk) {
    t.primary_key.is_some = true; t.primary_key.val = 0;
    t.indexes.len = 1; t.indexes.ptr = calloc(1, sizeof *t.indexes.ptr);
    t.indexes.ptr[0].name = S("pk"); t.indexes.ptr[0].columns.len = 1;
    t.indexes.ptr[0].columns.ptr = calloc(1, sizeof(uint32_t));
    t.indexes.ptr[0].kind = WORLDLINE_MODULE_TYPES_INDEX_KIND_UNIQUE;
  }
  return t;
}

static void add_index(worldline_module_types_table_def_t *t, const char *name, uint32_t column, uint8_t kind) {
  size_t n = t->indexes.len++;
  t->indexes.ptr = realloc(t->indexes.ptr, t->indexes.len * sizeof *t->indexes.ptr);
  memset(&t->indexes.ptr[n], 0, sizeof t->indexes.ptr[n]);
  t->indexes.ptr[n].name = S(name); t->indexes.ptr[n].columns.len = 1;
  t->indexes.ptr[n].columns.ptr = calloc(1, sizeof(uint32_t)); t->indexes.ptr[n].columns.ptr[0] = column;
  t->indexes.ptr[n].kind = kind;
}

void exports_worldline_module_guest_describe(exports_worldline_module_guest_module_def_t *ret) {
  size_t ntypes = SCHEMA == 10 ? 14 : SCHEMA == 11 ? 15 : 12;
  node_t *t = calloc(ntypes, sizeof(node_t));
  t[0] = prim(WORLDLINE_MODULE_TYPES_TYPE_NODE_U64);
  t[1] = prim(WORLDLINE_MODULE_TYPES_TYPE_NODE_U32);
  t[2] = product(2, (const char *[]){"id", SCHEMA == 1 ? "" : "n"}, (uint32_t[]){0, 0});
  t[3] = product(0, NULL, NULL);
  if (SCHEMA == 4) {
    t[4] = prim(WORLDLINE_MODULE_TYPES_TYPE_NODE_SUM);
    t[4].val.sum.len = 2; t[4].val.sum.ptr = calloc(2, sizeof *t[4].val.sum.ptr);
    t[4].val.sum.ptr[0].name = S("a"); t[4].val.sum.ptr[0].ty = 3;
    t[4].val.sum.ptr[1].name = S("a"); t[4].val.sum.ptr[1].ty = 3;
  } else {
    t[4] = product(2, (const char *[]){"x", SCHEMA == 3 ? "x" : "y"}, (uint32_t[]){0, 0});
  }
  t[5] = product(2, (const char *[]){"id", "pos"}, (uint32_t[]){0, 4});
  t[6] = prim(WORLDLINE_MODULE_TYPES_TYPE_NODE_TIMESTAMP);
  t[7] = product(2, (const char *[]){"at", "every"}, (uint32_t[]){6, 0});
  t[8] = prim(WORLDLINE_MODULE_TYPES_TYPE_NODE_STRING);
  t[9] = prim(WORLDLINE_MODULE_TYPES_TYPE_NODE_BOOL);
  t[10] = prim(WORLDLINE_MODULE_TYPES_TYPE_NODE_SUM);
  t[10].val.sum.len = 2; t[10].val.sum.ptr = calloc(2, sizeof *t[10].val.sum.ptr);
  t[10].val.sum.ptr[0].name = S("a"); t[10].val.sum.ptr[0].ty = 3;
  t[10].val.sum.ptr[1].name = S("b"); t[10].val.sum.ptr[1].ty = 0;
  t[11] = product(3, (const char *[]){"name", "flag", SCHEMA == 7 ? "st\u202Eate" : "state"}, (uint32_t[]){8, 9, 10});
  if (SCHEMA == 10) {
    t[12] = prim(WORLDLINE_MODULE_TYPES_TYPE_NODE_ARRAY); t[12].val.array = 3;
    t[13] = product(2, (const char *[]){"id", "units"}, (uint32_t[]){0, 12});
  }
  if (SCHEMA == 11) {
    t[12] = prim(WORLDLINE_MODULE_TYPES_TYPE_NODE_U8);
    t[13] = prim(WORLDLINE_MODULE_TYPES_TYPE_NODE_ARRAY); t[13].val.array = 12;
    t[14] = product(2, (const char *[]){"id", "units"}, (uint32_t[]){0, 13});
  }
  ret->types.ptr = t; ret->types.len = ntypes;

  size_t ntables = SCHEMA == 6 || SCHEMA == 10 || SCHEMA == 11 ? 5 : 4;
  ret->tables.len = ntables; ret->tables.ptr = calloc(ntables, sizeof *ret->tables.ptr);
  ret->tables.ptr[0] = table(SCHEMA == 2 ? "item\x1b[2J" : "item", SCHEMA == 3 || SCHEMA == 4 ? 5 : SCHEMA == 8 ? 99 : 2, 1);
  add_index(&ret->tables.ptr[0], "by_n", 1, WORLDLINE_MODULE_TYPES_INDEX_KIND_BTREE);
  ret->tables.ptr[1] = table("nothing", 3, 0);
  worldline_module_types_table_def_t *seq = &ret->tables.ptr[2];
  *seq = table("seq", 2, 1);
  seq->auto_inc.len = 1; seq->auto_inc.ptr = calloc(1, sizeof(uint32_t));
  add_index(seq, "by_n", 1, WORLDLINE_MODULE_TYPES_INDEX_KIND_UNIQUE);
  ret->tables.ptr[3] = table("mixed", 11, 0);

  if (SCHEMA == 10 || SCHEMA == 11) {
    ret->tables.ptr[4] = table("units", SCHEMA == 10 ? 13 : 14, 1);
    add_index(&ret->tables.ptr[4], "by_units", 1, WORLDLINE_MODULE_TYPES_INDEX_KIND_BTREE);
  }
  if (SCHEMA == 6) {
    worldline_module_types_table_def_t *tick = &ret->tables.ptr[4];
    *tick = table("tick", 7, 1);
    tick->schedule.is_some = true;
    tick->schedule.val.reducer = S("run");
    tick->schedule.val.at_column = 0;
    tick->schedule.val.interval_column.is_some = true;
    tick->schedule.val.interval_column.val = 1;
  }

  const char *names[] = {"fill_nothing", "fail_then_insert", "move_then_insert", "keep_cursor", "stale_cursor",
                         "bad_calls", SCHEMA == 6 ? "run" : "fill_units"};
  size_t nreducers = SCHEMA == 6 || SCHEMA == 10 || SCHEMA == 11 ? 7 : 6;
  ret->reducers.len = nreducers; ret->reducers.ptr = calloc(nreducers, sizeof *ret->reducers.ptr);
  for (size_t i = 0; i < nreducers; i++) {
    ret->reducers.ptr[i].name = S(names[i]);
    ret->reducers.ptr[i].params = i == 6 && SCHEMA == 6 ? fields(1, (const char *[]){"row"}, (uint32_t[]){7})
        : fields(SCHEMA == 5 && i == 0 ? 2 : 1, (const char *[]){"n", "n"}, (uint32_t[]){SCHEMA == 9 && i == 1 ? 99 : 1, 1});
  }
  ret->procedures.len = 0; ret->procedures.ptr = NULL;
}

static uint32_t varint(const module_list_u8_t *bytes) {
  uint32_t value = 0;
  for (size_t i = 0; i < bytes->len && i < 5; i++) {
    value |= (uint32_t)(bytes->ptr[i] & 0x7f) << (7 * i);
    if (!(bytes->ptr[i] & 0x80)) break;
  }
  return value;
}

typedef worldline_module_datastore_db_error_t db_error_t;
#define KIND(name) WORLDLINE_MODULE_DATASTORE_ERROR_KIND_##name

static bool ins(uint32_t table, const uint8_t *bytes, size_t len, db_error_t *e) {
  module_list_u8_t row = {(uint8_t *)bytes, len}, stored;
  bool ok = worldline_module_datastore_insert(table, &row, &stored, e);
  if (ok) module_list_u8_free(&stored);
  return ok;
}
static bool upd(uint32_t table, uint32_t index, const uint8_t *bytes, size_t len, db_error_t *e) {
  module_list_u8_t row = {(uint8_t *)bytes, len}, stored;
  bool ok = worldline_module_datastore_update(table, index, &row, &stored, e);
  if (ok) module_list_u8_free(&stored);
  return ok;
}
static bool fnd(uint32_t table, uint32_t index, const uint8_t *key, size_t len, db_error_t *e) {
  module_list_u8_t k = {(uint8_t *)key, len};
  module_option_list_u8_t found;
  bool ok = worldline_module_datastore_find(table, index, &k, &found, e);
  if (ok && found.is_some) module_list_u8_free(&found.val);
  return ok;
}
static int mentions(const module_string_t *s, const char *word) {
  size_t n = strlen(word);
  for (size_t i = 0; i + n <= s->len; i++)
    if (!memcmp(s->ptr + i, word, n)) return 1;
  return 0;
}

static char failure[512];

/* Whether a call that returned `ok` failed with `kind`, its message naming
   `a` and `b`; else says what went wrong in `failure`. */
static int refused(bool ok, db_error_t *e, int kind, const char *a, const char *b, const char *what) {
  int good = !ok && (int)e->kind == kind && mentions(&e->message, a) && mentions(&e->message, b);
  if (!good && ok) snprintf(failure, sizeof failure, "%s: succeeded", what);
  if (!good && !ok)
    snprintf(failure, sizeof failure, "%s: error kind %d: %.*s", what, (int)e->kind, (int)e->message.len, (char *)e->message.ptr);
  if (!ok) worldline_module_datastore_db_error_free(e);
  return good;
}
static int succeeded(bool ok, db_error_t *e, const char *what) {
  if (ok) return 1;
  snprintf(failure, sizeof failure, "%s: error kind %d: %.*s", what, (int)e->kind, (int)e->message.len, (char *)e->message.ptr);
  worldline_module_datastore_db_error_free(e);
  return 0;
}

/* The datastore's answers to calls a careless module makes. */
static bool bad_calls(void) {
  db_error_t e;
  static const uint8_t mixed[] = {2, 'o', 'k', 1, 1, 5}, trailing[] = {2, 'o', 'k', 1, 1, 5, 0},
                       truncated[] = {2, 'o'}, not_utf8[] = {2, 0xff, 0xfe, 0, 0}, bool2[] = {0, 2, 0},
                       no_case[] = {0, 0, 2}, one[] = {1, 1}, one_again[] = {1, 2}, seven[] = {7, 1},
                       key_and_more[] = {1, 0}, first[] = {0, 10}, second[] = {0, 11}, taken[] = {1, 11};
  bool deleted = true;
  module_list_u8_t seven_key = {(uint8_t *)seven, 1};
  return succeeded(ins(3, mixed, sizeof mixed, &e), &e, "a valid row of mixed")
      && refused(ins(3, trailing, sizeof trailing, &e), &e, KIND(INVALID_ROW), "mixed", "trailing", "a byte too many")
      && refused(ins(3, truncated, sizeof truncated, &e), &e, KIND(INVALID_ROW), "mixed", "name", "a cut row")
      && refused(ins(3, not_utf8, sizeof not_utf8, &e), &e, KIND(INVALID_ROW), "mixed", "UTF-8", "a string not UTF-8")
      && refused(ins(3, bool2, sizeof bool2, &e), &e, KIND(INVALID_ROW), "mixed", "flag", "a bool of 2")
      && refused(ins(3, no_case, sizeof no_case, &e), &e, KIND(INVALID_ROW), "mixed", "state", "a case past the sum's")
      && succeeded(ins(0, one, 2, &e), &e, "item (1, 1)")
      && refused(ins(0, one_again, 2, &e), &e, KIND(UNIQUE_VIOLATION), "item", "pk", "a second id 1")
      && refused(ins(99, one, 2, &e), &e, KIND(NO_SUCH_TABLE), "99", "", "table 99")
      && refused(fnd(0, 2, one, 1, &e), &e, KIND(NO_SUCH_INDEX), "item", "2", "index 2 of item")
      && refused(fnd(0, 1, one, 1, &e), &e, KIND(INDEX_NOT_UNIQUE), "item", "by_n", "find by a btree index")
      && refused(fnd(0, 0, key_and_more, 2, &e), &e, KIND(INVALID_KEY), "item", "", "a key with a byte too many")
      && refused(fnd(0, 0, NULL, 0, &e), &e, KIND(INVALID_KEY), "item", "", "an empty key")
      && succeeded(worldline_module_datastore_delete(0, 0, &seven_key, &deleted, &e), &e, "deleting id 7")
      && (deleted ? (snprintf(failure, sizeof failure, "deleting id 7 found a row"), 0) : 1)
      && refused(upd(0, 0, seven, 2, &e), &e, KIND(NOT_FOUND), "item", "pk", "updating id 7")
      && succeeded(ins(2, first, 2, &e), &e, "seq (0, 10)")
      && succeeded(ins(2, second, 2, &e), &e, "seq (0, 11)")
      && refused(upd(2, 0, taken, 2, &e), &e, KIND(UNIQUE_VIOLATION), "seq", "by_n", "seq 1 taking n 11");
}

/* Inserts `len` bytes into `table`; returns the error kind, or -1 on success. */
static int insert(uint32_t table, uint8_t *bytes, size_t len) {
  module_list_u8_t row = {bytes, len}, stored;
  worldline_module_datastore_db_error_t e;
  if (worldline_module_datastore_insert(table, &row, &stored, &e)) {
    module_list_u8_free(&stored);
    return -1;
  }
  int kind = e.kind;
  worldline_module_datastore_db_error_free(&e);
  return kind;
}

bool exports_worldline_module_guest_call_reducer(uint32_t id, exports_worldline_module_guest_reducer_context_t *ctx,
                                                 module_list_u8_t *arguments, module_string_t *err) {
  (void)ctx;
  uint32_t n = varint(arguments);
  module_list_u8_free(arguments);
  if (id == 0) {
    for (uint32_t i = 0; i < n; i++) {
      if (insert(1, NULL, 0) != -1) { module_string_dup(err, "an empty row was refused"); return false; }
    }
    return true;
  }
  if (id == 6 && SCHEMA == 11) {
    /* (id, 65,536 bytes) */
    static uint8_t row[65536 + 8];
    for (uint32_t i = 0; i < n; i++) {
      uint8_t *at = row;
      for (uint32_t v = i; ; v >>= 7) { *at++ = (v & 0x7f) | (v >= 0x80 ? 0x80 : 0); if (v < 0x80) break; }
      *at++ = 0x80; *at++ = 0x80; *at++ = 0x04;
      memset(at, (int)i, 65536); at += 65536;
      db_error_t e;
      if (!ins(4, row, at - row, &e)) { *err = e.message; return false; }
    }
    return true;
  }
  if (id == 6) {
    /* (id, 65,536 empty products): 1 to 3 bytes of id, 3 of length */
    for (uint32_t i = 0; i < n; i++) {
      uint8_t row[6], *at = row;
      for (uint32_t v = i; ; v >>= 7) { *at++ = (v & 0x7f) | (v >= 0x80 ? 0x80 : 0); if (v < 0x80) break; }
      *at++ = 0x80; *at++ = 0x80; *at++ = 0x04;
      db_error_t e;
      if (!ins(4, row, at - row, &e)) { *err = e.message; return false; }
    }
    return true;
  }
  if (id == 5) {
    if (bad_calls()) return true;
    module_string_dup(err, failure);
    return false;
  }
  static worldline_module_datastore_own_cursor_t kept;
  if (id == 3 || id == 4) {
    worldline_module_datastore_own_cursor_t fresh;
    worldline_module_datastore_db_error_t e;
    for (uint32_t i = 0; i < n; i++) insert(1, NULL, 0);
    if (!worldline_module_datastore_scan(id == 3 ? 0 : 1, &fresh, &e)) { *err = e.message; return false; }
    if (id == 3) { kept = fresh; return true; }
    worldline_module_datastore_batch_t batch;
    worldline_module_datastore_method_cursor_next(worldline_module_datastore_borrow_cursor(kept), 100, &batch);
    char message[64];
    snprintf(message, sizeof message, "the kept cursor returned %u rows", batch.count);
    module_list_u8_free(&batch.data);
    module_string_dup(err, message);
    return false;
  }
  if (id == 2) {
    uint8_t row[2] = {0, 10}; /* (id 0, so the sequence's 1; n 10) */
    module_list_u8_t bytes = {row, 2}, stored;
    worldline_module_datastore_db_error_t e;
    if (insert(2, row, 2) != -1) { module_string_dup(err, "the first insert failed"); return false; }
    row[0] = 5; /* the row with n 10 gets id 5, past the sequence */
    if (!worldline_module_datastore_update(2, 1, &bytes, &stored, &e)) { *err = e.message; return false; }
    module_list_u8_free(&stored);
    for (uint32_t i = 0; i < n; i++) {
      row[0] = 0; row[1] = 11 + i;
      if (!worldline_module_datastore_insert(2, &bytes, &stored, &e)) { *err = e.message; return false; }
      module_list_u8_free(&stored);
    }
    return true;
  }
  static uint8_t junk[1024];
  junk[0] = 1; junk[1] = 1; /* a valid (id, n), then 1,022 bytes too many */
  for (uint32_t i = 0; i < n; i++) {
    if (insert(0, junk, sizeof junk) != WORLDLINE_MODULE_DATASTORE_ERROR_KIND_INVALID_ROW) {
      module_string_dup(err, "a row with trailing bytes was not invalid-row");
      return false;
    }
  }
  if (insert(0, junk, 2) != -1) { module_string_dup(err, "the valid row was refused"); return false; }
  return true;
}

"#;

fn engine_with(adjust: impl FnOnce(&mut EngineConfig)) -> Engine {
    let mut config = test_engine_config();
    adjust(&mut config);
    Engine::new(config).expect("creating the wasm engine")
}

fn call(db: &mut Database, reducer: &str, n: u32) -> Result<(), CallError> {
    db.call_reducer(reducer, &args(&(n,)), CallContext::new(OWNER))
        .map(drop)
}

/// The module, described as it is (`SCHEMA` 0).
fn module() -> Vec<u8> {
    c_component("contract", SOURCE, &[])
}

// The WIT's `table-def`, `reducer-def` and `type-node` rules: each broken
// description is refused at publish with a message naming the table,
// column or reducer and what is wrong with it. Each was accepted before:
// an empty column name (the WIT says non-empty) and a table name holding
// a terminal escape sequence, shown as it is wherever the name is
// printed, or a column name holding a right-to-left override, which shows
// the rest of any line printing it reversed; two struct fields, sum cases or parameters of one name, of
// which a row or argument list in JSON (the CLI's, a client's) can show
// or take only one.
#[test]
fn descriptions_breaking_the_naming_rules_are_refused_naming_the_problem() {
    let _one = one_at_a_time();
    let engine = engine_with(|_| {});
    let cases: [(&str, &[&str]); 5] = [
        ("table `item`", &["column 1", "empty name"]),
        ("control character", &["item\\u{1b}[2J", "U+001B"]),
        (
            "table `item`",
            &["column `pos`", "two fields are named `x`"],
        ),
        ("table `item`", &["column `pos`", "two cases are named `a`"]),
        ("reducer `fill_nothing`", &["two parameters are named `n`"]),
    ];
    for (schema, (names, problems)) in (1..).zip(cases) {
        let message = refusal(&engine, schema);
        for expected in std::iter::once(&names).chain(problems) {
            assert!(
                message.contains(expected),
                "SCHEMA={schema}: `{message}` does not say {expected:?}"
            );
        }
    }
    let reordering = refusal(&engine, 7);
    assert!(
        reordering.contains("st\\u{202e}ate") && reordering.contains("U+202E"),
        "{reordering}"
    );
    Database::create(&engine, &module(), OWNER).expect("the unbroken description is accepted");
}

/// Why publishing the module built with `SCHEMA` defined as `schema` is refused.
fn refusal(engine: &Engine, schema: u32) -> String {
    let wasm = c_component(
        &format!("contract-schema{schema}"),
        SOURCE,
        &[&format!("-DSCHEMA={schema}")],
    );
    match Database::create(engine, &wasm, OWNER) {
        Err(HostError::Schema(error)) => error.to_string(),
        Err(other) => panic!("SCHEMA={schema}: refused, but not for its schema: {other}"),
        Ok(_) => panic!("SCHEMA={schema}: a broken description was accepted"),
    }
}

// A type reference past the arena was refused as "item: type reference
// 99 is ...", leaving a raw-WIT author to guess whether `item` is a
// table, a reducer or a procedure, and which of its parameters is wrong.
#[test]
fn a_dangling_type_reference_is_refused_naming_its_declaration() {
    let _one = one_at_a_time();
    let engine = engine_with(|_| {});
    let outside = "type reference 99 is outside the type arena of 12 nodes";
    assert_eq!(
        refusal(&engine, 8),
        format!("table `item`: the row type: {outside}")
    );
    assert_eq!(
        refusal(&engine, 9),
        format!("reducer `fail_then_insert`: parameter `n`: {outside}")
    );
}

// The WIT's `schedule-def`: the host moves a repeating row to its next
// time by its primary key. A schedule whose time column was in that key
// was accepted, and the host deleted each of its rows at the first run
// instead of moving it (it looked for the moved row under its new key).
#[test]
fn a_repeating_schedule_keyed_by_its_time_is_refused() {
    let _one = one_at_a_time();
    let message = refusal(&engine_with(|_| {}), 6);
    assert_eq!(
        message,
        "table `tick`: schedule: the time column `at` is in the primary key, so a repeating \
         row could not be moved to its next time (the host finds the row by its primary key)"
    );
}

/// An engine whose transactions may write at most 1 MiB of rows, and
/// whose databases may hold as much, with a deadline no honest call here
/// comes near.
fn small_quota_engine() -> Engine {
    engine_with(|c| {
        c.reducer_deadline = std::time::Duration::from_secs(10);
        c.max_tx_write_bytes = 1 << 20;
        c.max_database_bytes = 1 << 20;
    })
}

// The WIT's limits bound the rows a transaction writes and a database
// holds, so that no module makes the host hold unbounded memory. They
// counted row bytes only, and a row of a table without columns has none:
// a reducer could insert rows of nothing without end, each costing the
// host its bookkeeping, and no quota ever noticed. Every row now counts
// its bookkeeping too.
#[test]
fn rows_without_bytes_still_count_against_the_row_quotas() {
    let _one = one_at_a_time();
    let engine = small_quota_engine();
    let mut db = Database::create(&engine, &module(), OWNER).expect("creating");
    let error = call(&mut db, "fill_nothing", 200_000).expect_err("past the transaction quota");
    assert!(
        matches!(&error, CallError::LimitExceeded(m) if m.contains("max_tx_write_bytes")),
        "{error}"
    );
    assert_eq!(
        db.rows("nothing").expect("rows").len(),
        0,
        "nothing was written"
    );

    let mut calls = 0;
    let error = loop {
        match call(&mut db, "fill_nothing", 20_000) {
            Ok(()) => calls += 1,
            Err(error) => break error,
        }
        assert!(
            calls < 100,
            "2,000,000 rows and the database quota never noticed"
        );
    };
    assert!(
        matches!(&error, CallError::LimitExceeded(m) if m.contains("max_database_bytes")),
        "{error}"
    );
    assert_eq!(
        db.rows("nothing").expect("rows").len(),
        calls * 20_000,
        "the refused call wrote nothing"
    );
}

// The WIT: "A failed call changes nothing". An insert refused as
// `invalid-row` still counted its bytes against the transaction's write
// quota, so a transaction that had written nothing was stopped for
// writing too much (and an upsert, an update failing with `not-found`
// then an insert, counted each row twice).
#[test]
fn refused_writes_do_not_count_against_the_transaction_quota() {
    let _one = one_at_a_time();
    let engine = small_quota_engine();
    let mut db = Database::create(&engine, &module(), OWNER).expect("creating");
    call(&mut db, "fail_then_insert", 2_048)
        .expect("2 MiB of refused rows wrote nothing, and one small row fits");
    assert_eq!(rows::<(u64, u64)>(&db, "item"), [(1, 1)]);
}

// The WIT's auto-increment rules: inserting 0 takes the sequence's next
// value, and an explicit value at or past it moves the sequence past it,
// so that the values a sequence hands out are free. An update giving a row
// an explicit id past the sequence left the sequence where it was, and
// the insert that reached that id failed with `unique-violation` although
// it named no id at all.
#[test]
fn the_sequence_never_hands_out_an_id_an_update_gave() {
    let _one = one_at_a_time();
    let engine = small_quota_engine();
    let mut db = Database::create(&engine, &module(), OWNER).expect("creating");
    call(&mut db, "move_then_insert", 4).expect("every insert of 0 takes a free id");
    let mut ids: Vec<u64> = rows::<(u64, u64)>(&db, "seq")
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, [5, 6, 7, 8, 9]);
}

// The WIT's `cursor`: a cursor lives only as long as the call that opened
// it, and `next` on a handle kept past that (in a global) traps. The host
// closed such a cursor, but the next cursor opened took its place, so the
// kept handle read the new cursor's rows (and dropping it would have
// closed the new cursor under its owner).
#[test]
fn a_cursor_kept_past_its_call_traps_and_reads_no_other() {
    let _one = one_at_a_time();
    let engine = small_quota_engine();
    let mut db = Database::create(&engine, &module(), OWNER).expect("creating");
    call(&mut db, "keep_cursor", 0).expect("keeping a cursor");
    let error = call(&mut db, "stale_cursor", 3).expect_err("the kept cursor is closed");
    assert!(
        matches!(&error, CallError::Trapped(m) if m.contains("cursor")),
        "{error}"
    );
    assert_eq!(db.rows("nothing").expect("rows").len(), 0, "rolled back");
    call(&mut db, "fill_nothing", 1).expect("the next call runs");
}

// The WIT's `datastore`: every bad call a careless module makes gets the
// documented error value, with a message naming the table (and the column
// or index involved), and changes nothing: the reducer carries on, and
// what it wrote before and after commits. Each malformed row is one way
// postcard bytes can be wrong: a byte too many, cut short, a string not
// UTF-8, a bool of 2, a sum case that does not exist.
#[test]
fn the_datastore_answers_bad_calls_as_the_wit_says() {
    let _one = one_at_a_time();
    let engine = small_quota_engine();
    let mut db = Database::create(&engine, &module(), OWNER).expect("creating");
    call(&mut db, "bad_calls", 0).expect("every answer as the WIT says");
    assert_eq!(rows::<(u64, u64)>(&db, "item"), [(1, 1)]);
    let mut seq = rows::<(u64, u64)>(&db, "seq");
    seq.sort_unstable();
    assert_eq!(
        seq,
        [(1, 10), (2, 11)],
        "the refused update changed nothing"
    );
    assert_eq!(db.rows("mixed").expect("rows").len(), 1);
}

// An array of a type that takes no bytes (the empty product) holds up to
// 65,536 elements in the 3 bytes of its length. A 12 KiB component whose
// table indexed such a column made the host keep every value of it in the
// index, each element a decoded value: 2 MiB of host memory for a row
// that counted 3 bytes (and 16) against the quotas. Publishing must refuse
// such a module, naming the rule, or run it without that cost.
#[test]
fn rows_of_a_few_bytes_cannot_make_the_host_hold_megabytes_each() {
    let _one = one_at_a_time();
    let wasm = c_component("contract-schema10", SOURCE, &["-DSCHEMA=10"]);
    let engine = small_quota_engine();
    let mut db = match Database::create(&engine, &wasm, OWNER) {
        Err(HostError::Schema(error)) => {
            let message = error.to_string();
            assert!(
                message.contains("table `units`: column `units`"),
                "refused without naming the column: {message}"
            );
            return;
        }
        Err(other) => panic!("refused, but not for its schema: {other}"),
        Ok(db) => db,
    };
    let before = peak_resident_bytes();
    call(&mut db, "fill_units", 200).expect("200 rows of a few bytes each");
    let grown = peak_resident_bytes().saturating_sub(before);
    assert!(
        grown < 64 << 20,
        "200 rows of 6 bytes made the host hold {} MiB more",
        grown >> 20
    );
}

// The row quotas counted row bytes, not what indexing them costs: a btree
// index over a column of bytes keeps a decoded value (32 bytes) for each
// byte, so 4 MiB of such rows, well within a 64 MiB transaction, made the
// host hold 203 MiB more, and a 4 GiB database of them would take more
// than 128 GiB. Rows now count their index entries too.
#[test]
fn index_entries_count_against_the_row_quotas() {
    let _one = one_at_a_time();
    let wasm = c_component("contract-schema11", SOURCE, &["-DSCHEMA=11"]);
    let engine = small_quota_engine();
    let mut db = Database::create(&engine, &wasm, OWNER).expect("creating");
    let before = peak_resident_bytes();
    let error = call(&mut db, "fill_units", 8).expect_err("512 KiB of rows, 16 MiB of index");
    let grown = peak_resident_bytes().saturating_sub(before);
    assert!(
        matches!(&error, CallError::LimitExceeded(m) if m.contains("max_tx_write_bytes")),
        "{error}"
    );
    assert_eq!(
        db.rows("units").expect("rows").len(),
        0,
        "nothing was written"
    );
    assert!(grown < 32 << 20, "the host held {} MiB more", grown >> 20);
}
