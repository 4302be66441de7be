"""Table declarations, natively: which attribute of ``ctx.db.<table>``
reaches each index, and the names refused because they would shadow a
handle method or another index."""

import pathlib
import sys
import unittest
from dataclasses import dataclass
from typing import Annotated

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

from worldline import (SchemaError, Timestamp, auto_inc, index, primary_key, schedule_at,  # noqa: E402
                       schedule_interval, u32, u64)
from worldline.schema import FunctionInfo, TableInfo  # noqa: E402
from worldline.types import TypeArena, describe  # noqa: E402


@dataclass
class Task:
    id: Annotated[u32, primary_key]
    owner: Annotated[u32, index]
    prio: u32


@dataclass
class Counted:
    id: Annotated[u32, primary_key]
    count: Annotated[u32, index]


@dataclass
class Move:
    id: Annotated[u32, primary_key]
    from_: Annotated[u32, index]
    to: u32


@dataclass
class Plain:
    id: Annotated[u32, primary_key]
    count: u32
    insert: str


class KeywordNames(unittest.TestCase):
    def test_a_keyword_field_with_a_trailing_underscore_is_described_without_it(self):
        info = TableInfo(Move, "move", True, None, None)
        arena = TypeArena()
        fields = arena.nodes[describe(Move, arena, "move")][1]
        self.assertEqual([name for name, _ in fields], ["id", "from", "to"])
        attrs = {i.name: i.attr for i in info.indexes}
        self.assertEqual(attrs, {"move_id_pk": "id", "move_from_idx": "from_"})

    def test_a_keyword_parameter_with_a_trailing_underscore_is_described_without_it(self):
        def transfer(ctx, from_: u32, to: u32):
            pass

        self.assertEqual([p for p, _ in FunctionInfo(transfer, "transfer").params], ["from", "to"])


class IndexAttributes(unittest.TestCase):
    def test_a_named_index_is_reached_by_its_declared_name(self):
        info = TableInfo(Task, "task", True, None, {"task_owner_prio": ["owner", "prio"]})
        attrs = {i.name: i.attr for i in info.indexes}
        self.assertEqual(attrs, {"task_id_pk": "id", "task_owner_idx": "owner",
                                 "task_owner_prio": "task_owner_prio"})

    def test_an_indexed_column_named_like_a_handle_method_is_refused(self):
        with self.assertRaises(SchemaError) as caught:
            TableInfo(Counted, "counted", True, None, None)
        message = str(caught.exception)
        self.assertIn("column count", message)
        self.assertIn("ctx.db.counted.count", message)
        self.assertIn("reserved: count, insert", message)

    def test_an_index_named_like_a_handle_method_is_refused(self):
        with self.assertRaises(SchemaError) as caught:
            TableInfo(Task, "task", True, None, {"insert": ["owner", "prio"]})
        self.assertIn("index insert", str(caught.exception))

    def test_an_index_named_like_an_indexed_column_is_refused(self):
        with self.assertRaises(SchemaError) as caught:
            TableInfo(Task, "task", True, None, {"owner": ["owner", "prio"]})
        self.assertIn("task_owner_idx and owner", str(caught.exception))

    def test_unindexed_columns_may_take_any_name(self):
        info = TableInfo(Plain, "plain", True, None, None)
        self.assertEqual([i.attr for i in info.indexes], ["id"])


@dataclass
class Due:
    id: Annotated[u32, primary_key]
    at: Annotated[Timestamp, schedule_at]
    also: Annotated[Timestamp, schedule_at]
    every: Annotated[u64, schedule_interval]


class Schedules(unittest.TestCase):
    def test_schedule_markers_on_a_table_that_is_not_scheduled_are_refused(self):
        with self.assertRaisesRegex(SchemaError, "table due: schedule_at marks a column of a scheduled table"):
            TableInfo(Due, "due", False, None, None)

    def test_a_second_schedule_at_column_is_refused(self):
        with self.assertRaisesRegex(SchemaError, "table due: at most one schedule_at column"):
            TableInfo(Due, "due", False, "tick", None)


@dataclass
class TextKey:
    id: Annotated[str, primary_key, auto_inc]


@dataclass
class Counter:
    id: Annotated[u64, primary_key, auto_inc]


class AutoIncrement(unittest.TestCase):
    def test_auto_inc_on_a_column_that_is_not_an_integer_is_refused_at_import(self):
        with self.assertRaisesRegex(SchemaError, "table text_key: auto_inc column id is <class 'str'>, "
                                    "not an integer type"):
            TableInfo(TextKey, "text_key", False, None, None)

    def test_auto_inc_on_an_integer_column_is_taken(self):
        self.assertEqual(TableInfo(Counter, "counter", False, None, None).auto_inc, [0])


class NamedIndexes(unittest.TestCase):
    def test_the_columns_of_a_named_index_are_a_list(self):
        with self.assertRaisesRegex(SchemaError, "index by_owner takes a list of column names, got 'owner'"):
            TableInfo(Task, "task", True, None, {"by_owner": "owner"})


class Reducers(unittest.TestCase):
    def test_a_reducer_annotated_to_return_a_value_is_refused(self):
        def total(ctx, n: u32) -> u32:
            return n

        with self.assertRaisesRegex(SchemaError, "reducer total returns nothing"):
            FunctionInfo(total, "total")
        self.assertEqual(FunctionInfo(total, "total", procedure=True).returns, u32)

    def test_a_reducer_may_say_it_returns_none(self):
        def noop(ctx) -> None:
            pass

        self.assertEqual(FunctionInfo(noop, "noop").params, [])


if __name__ == "__main__":
    unittest.main()
