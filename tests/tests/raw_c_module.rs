//! A module written in plain C against the raw WIT (no SDK), built during
//! the test with the C toolchain of `tests/setup.sh` (`wit-bindgen c`,
//! clang-19 with wasi-libc, `wasm-tools component new` and the wasmtime
//! preview-1 reactor adapter): what `wit/worldline.wit` promises a module
//! author who binds it directly, and what such an author can do to the host.

use worldline_host::{CallContext, CallError, Database, HostError};
use worldline_tests::raw_c::{c_component, one_at_a_time};
use worldline_tests::{OWNER, args, patient_engine, peak_resident_bytes, resident_bytes, rows};

/// The module: table `item` (`id: u64` primary key, `n: u64`) and reducers
/// `fill_memory(id)` (inserts a row, then grows memory until the host
/// refuses, then returns ok), `bad_error(id)` (inserts a row, then
/// returns an `err` message that is not UTF-8) and `take_bytes(data:
/// array(u8))` (returns ok, writing nothing). With `WIDE_TABLES` defined
/// it also declares that many more tables, each with a row type of 8,192
/// type nodes (within the per-type limit of 10,000).
const SOURCE: &str = r#"
#include "module.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef worldline_module_types_type_node_t node_t;
typedef worldline_module_types_field_t field_t;

static module_string_t S(const char *s) { module_string_t m; module_string_dup(&m, s); return m; }
static node_t prim(uint8_t tag) { node_t n; memset(&n, 0, sizeof n); n.tag = tag; return n; }
static node_t product(size_t n, const char **names, const uint32_t *tys) {
  node_t p = prim(WORLDLINE_MODULE_TYPES_TYPE_NODE_PRODUCT);
  p.val.product.len = n; p.val.product.ptr = calloc(n, sizeof(field_t));
  for (size_t i = 0; i < n; i++) {
    if (names) { p.val.product.ptr[i].name.is_some = true; p.val.product.ptr[i].name.val = S(names[i]); }
    p.val.product.ptr[i].ty = tys[i];
  }
  return p;
}
static worldline_module_types_table_def_t table(const char *name, uint32_t row_type) {
  worldline_module_types_table_def_t t; memset(&t, 0, sizeof t);
  t.name = S(name); t.row_type = row_type; t.public_ = true;
  t.primary_key.is_some = true; t.primary_key.val = 0;
  t.indexes.len = 1; t.indexes.ptr = calloc(1, sizeof *t.indexes.ptr);
  t.indexes.ptr[0].name = S("pk"); t.indexes.ptr[0].columns.len = 1;
  t.indexes.ptr[0].columns.ptr = calloc(1, sizeof(uint32_t));
  t.indexes.ptr[0].kind = WORLDLINE_MODULE_TYPES_INDEX_KIND_UNIQUE;
  return t;
}

#ifndef WIDE_TABLES
#define WIDE_TABLES 0
#endif
#define DOUBLINGS 12

void exports_worldline_module_guest_describe(exports_worldline_module_guest_module_def_t *ret) {
  static const char *cols[] = {"id", "n"};
  static const char *wide_cols[] = {"id", "blob"};
  size_t ntypes = 2 + (WIDE_TABLES ? DOUBLINGS + 1 : 0);
  /* After the row types: `u8` and `array(u8)`, for `take_bytes`. */
  node_t *t = calloc(ntypes + 2, sizeof(node_t));
  t[ntypes] = prim(WORLDLINE_MODULE_TYPES_TYPE_NODE_U8);
  t[ntypes + 1] = prim(WORLDLINE_MODULE_TYPES_TYPE_NODE_ARRAY);
  t[ntypes + 1].val.array = ntypes;
  t[0] = prim(WORLDLINE_MODULE_TYPES_TYPE_NODE_U64);
  t[1] = product(2, cols, (uint32_t[]){0, 0});
  for (size_t i = 2; i < ntypes - 1 && WIDE_TABLES; i++)
    t[i] = product(2, NULL, (uint32_t[]){i == 2 ? 0 : i - 1, i == 2 ? 0 : i - 1});
  if (WIDE_TABLES) t[ntypes - 1] = product(2, wide_cols, (uint32_t[]){0, ntypes - 2});
  ret->types.ptr = t; ret->types.len = ntypes + 2;

  size_t ntables = 1 + WIDE_TABLES;
  ret->tables.ptr = calloc(ntables, sizeof *ret->tables.ptr); ret->tables.len = ntables;
  ret->tables.ptr[0] = table("item", 1);
  for (size_t i = 1; i < ntables; i++) {
    char name[32]; snprintf(name, sizeof name, "wide%zu", i);
    ret->tables.ptr[i] = table(name, ntypes - 1);
  }

  ret->reducers.len = 3; ret->reducers.ptr = calloc(3, sizeof *ret->reducers.ptr);
  const char *names[] = {"fill_memory", "bad_error", "take_bytes"};
  for (int i = 0; i < 3; i++) {
    ret->reducers.ptr[i].name = S(names[i]);
    node_t params = i < 2 ? product(1, (const char *[]){"id"}, (uint32_t[]){0})
                          : product(1, (const char *[]){"data"}, (uint32_t[]){ntypes + 1});
    ret->reducers.ptr[i].params = params.val.product;
  }
  ret->procedures.len = 0; ret->procedures.ptr = NULL;
}

static void *volatile sink;

bool exports_worldline_module_guest_call_reducer(uint32_t id, exports_worldline_module_guest_reducer_context_t *ctx,
                                                 module_list_u8_t *arguments, module_string_t *err) {
  (void)ctx;
  if (id == 2) { module_list_u8_free(arguments); return true; }
  /* The argument is one u64 below 128: a one-byte varint. */
  uint8_t row_bytes[2] = {arguments->len ? arguments->ptr[0] : 0, 7};
  module_list_u8_free(arguments);
  module_list_u8_t row = {row_bytes, 2}, stored;
  worldline_module_datastore_db_error_t e;
  if (!worldline_module_datastore_insert(0, &row, &stored, &e)) {
    worldline_module_datastore_db_error_free(&e);
    module_string_dup(err, "insert failed");
    return false;
  }
  module_list_u8_free(&stored);
  if (id == 0) {
    size_t mib = 0;
    for (;;) { void *p = malloc(1 << 20); if (!p) break; memset(p, 1, 1 << 20); sink = p; mib++; }
    return mib > 0;
  }
  err->ptr = malloc(3); memcpy(err->ptr, "\xff\xfe!", 3); err->len = 3;
  return false;
}

"#;

fn item_ids(db: &Database) -> Vec<u64> {
    rows::<(u64, u64)>(db, "item")
        .into_iter()
        .map(|(id, _)| id)
        .collect()
}

// The WIT's limits section: a growth past the memory limit fails without
// trapping, so a C module whose `malloc` returns NULL carries on, and its
// call commits like any other.
#[test]
fn a_refused_memory_growth_does_not_trap_a_module_that_handles_it() {
    let _one = one_at_a_time();
    let engine = patient_engine();
    let mut db =
        Database::create(&engine, &c_component("raw", SOURCE, &[]), OWNER).expect("creating");
    db.call_reducer("fill_memory", &args(&(1u64,)), CallContext::new(OWNER))
        .expect("the module handled the refused growth and returned ok");
    assert_eq!(item_ids(&db), [1]);
}

// The WIT's "Buffers and strings": an `err` message that is not UTF-8
// fails the call in the canonical ABI, rolls back what the reducer wrote,
// and leaves the database serving.
#[test]
fn an_error_message_that_is_not_utf8_fails_the_call_and_changes_nothing() {
    let _one = one_at_a_time();
    let engine = patient_engine();
    let mut db =
        Database::create(&engine, &c_component("raw", SOURCE, &[]), OWNER).expect("creating");
    let error = db
        .call_reducer("bad_error", &args(&(2u64,)), CallContext::new(OWNER))
        .expect_err("a message that is not UTF-8 cannot cross the boundary");
    assert!(
        matches!(&error, CallError::Trapped(m) if m.contains("utf-8")),
        "{error}"
    );
    assert!(item_ids(&db).is_empty(), "the insert was rolled back");
    db.call_reducer("fill_memory", &args(&(3u64,)), CallContext::new(OWNER))
        .expect("the next call runs");
    assert_eq!(item_ids(&db), [3]);
}

// The schema had limits per type (64 levels, 10,000 nodes) but none on the
// whole: a 163 KiB component whose 200 tables each have a row type of 8,192
// nodes (every one within those limits) made the host hold about 400 MiB
// more once loaded (on a release server, 1,000 such tables took 3.6 GiB and
// 8 s to publish), and any identity may publish a new database. Publishing
// must refuse such a module, naming a limit, or load it without that cost.
#[test]
fn a_small_module_cannot_make_the_host_hold_hundreds_of_mib_of_schema() {
    let _one = one_at_a_time();
    let wasm = c_component("raw-wide", SOURCE, &["-DWIDE_TABLES=200"]);
    let engine = patient_engine();
    let before = resident_bytes();
    let created = Database::create(&engine, &wasm, OWNER);
    let grown = resident_bytes().saturating_sub(before);
    match created {
        Err(HostError::Schema(error)) => {
            let message = error.to_string();
            assert!(
                ["limit", "at most", "more than"]
                    .iter()
                    .any(|word| message.contains(word)),
                "refused without naming a limit: {message}"
            );
        }
        Err(other) => panic!("refused, but not for its schema: {other}"),
        Ok(_) => assert!(
            grown < 128 << 20,
            "a {} KiB component made the host hold {} MiB more",
            wasm.len() >> 10,
            grown >> 20
        ),
    }
}

// The WIT: arguments are checked against the declared parameter types
// before `call-reducer` runs. The host checked them by decoding them into
// values of dozens of bytes each, so 48 MiB of arguments (one
// `array(u8)`) made it allocate over 2 GiB for the check; a few such
// calls at once could take a server's memory. Checking must cost about
// what the arguments' bytes do.
#[test]
fn checking_a_call_s_arguments_costs_the_host_about_their_bytes() {
    let _one = one_at_a_time();
    let engine = patient_engine();
    let mut db =
        Database::create(&engine, &c_component("raw", SOURCE, &[]), OWNER).expect("creating");
    let arguments = args(&(vec![7u8; 48 << 20],));
    let before = peak_resident_bytes();
    db.call_reducer("take_bytes", &arguments, CallContext::new(OWNER))
        .expect("the arguments decode as the declared `array(u8)`");
    let grown = peak_resident_bytes().saturating_sub(before);
    assert!(
        grown < 512 << 20,
        "a call with {} MiB of arguments made the host's peak memory grow by {} MiB",
        arguments.len() >> 20,
        grown >> 20
    );
}
