// Where the stock workload buys: the HTTP stock endpoint, or a MySQL/MariaDB table with a
// correct conditional UPDATE or a racy read-then-write (the bookstore's two ways to sell).
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>

#include <envkit/connection.hpp>
#include <envkit/result.hpp>

#include "race-probe/config.hpp"
#include "race-probe/history.hpp"

namespace race_probe {

/// One worker's purchases: fills op.outcome, op.status and op.error for a buy of op.id.
/// Returns true when the target answered (so it was reached), false on a transport failure.
using Buyer = std::function<bool(Operation& op)>;

class StockTarget {
 public:
  virtual ~StockTarget() = default;
  /// Sets each item's initial stock before the purchases start.
  virtual envkit::Result<std::map<std::string, int64_t>> set_up(uint64_t items, uint64_t stock) = 0;
  /// A buyer for one worker, with its own connection.
  virtual envkit::Result<Buyer> buyer() = 0;
  /// The stock left of each item.
  virtual envkit::Result<Snapshot> read() = 0;
};

/// http(s)://HOST/PATH: PUT PATH/ITEM {"stock":N}, POST PATH/ITEM/buy, GET PATH.
/// mysql://USER@HOST/DB?table=T&buy=atomic|racy&window=DUR: items are rows (item, stock) of
/// T, created if missing; atomic buys with UPDATE ... WHERE stock > 0, racy SELECTs the stock,
/// waits `window` (default 10ms) and writes back what it read minus one.
envkit::Result<std::unique_ptr<StockTarget>> open_stock_target(const Config& config);

/// The item names: item0, item1, ...
std::string item_name(uint64_t i);

}  // namespace race_probe
