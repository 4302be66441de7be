// The declarations the features test module's source files share: the
// `item` table and `observe`. See features.cpp.
#pragma once

#include <worldline/worldline.hpp>

/// An item with several kinds of index.
struct Item {
    /// Auto-incremented primary key.
    uint32_t id;
    /// A unique stock-keeping unit.
    std::string sku;
    /// Who owns the item.
    uint32_t owner;
    /// The item's rank among its owner's items.
    int32_t rank;
    /// Price in cents, with a btree index.
    uint64_t price;
};
WORLDLINE_ROW(Item, id, sku, owner, rank, price);

inline worldline::Table<Item> item{
    "item",
    worldline::Public,
    worldline::primary_key(&Item::id),
    worldline::auto_inc(&Item::id),
    worldline::unique(&Item::sku),
    worldline::btree(&Item::price),
    worldline::index("by_owner_rank", &Item::owner, &Item::rank),
};

/// Records `value` under `key` in the private `observation` table.
void observe(const std::string& key, std::string value);
