// The stock workload's targets: the HTTP endpoint and a MySQL/MariaDB table.
#include "race-probe/stock.hpp"

#include <thread>

#include <envkit/exit_status.hpp>
#include <envkit/http1.hpp>
#include <envkit/json.hpp>
#include <envkit/mysql.hpp>
#include <envkit/options.hpp>
#include <envkit/url.hpp>

namespace race_probe {

using envkit::Error;
using envkit::Exit;

std::string item_name(uint64_t i) { return "item" + std::to_string(i); }

namespace {

class HttpStock : public StockTarget {
 public:
  HttpStock(std::string base, envkit::ConnectionOptions connection, std::chrono::milliseconds timeout)
      : base_(std::move(base)), connection_(std::move(connection)), timeout_(timeout) {}

  envkit::Result<std::map<std::string, int64_t>> set_up(uint64_t items, uint64_t stock) override {
    envkit::HttpConnection client(connection_);
    std::map<std::string, int64_t> initial;
    for (uint64_t i = 0; i < items; ++i) {
      envkit::HttpRequest req;
      req.method = "PUT";
      req.url = base_ + "/" + item_name(i);
      req.headers.emplace_back("Content-Type", "application/json");
      req.body = "{\"stock\":" + std::to_string(stock) + "}";
      req.timeout = timeout_;
      auto r = client.perform(req);
      if (!r) return r.error().context("setting the stock of " + item_name(i));
      if (r->status / 100 != 2) {
        return Error{Exit::unavailable, "setting the stock: " + req.url + ": HTTP " + std::to_string(r->status)};
      }
      initial[item_name(i)] = static_cast<int64_t>(stock);
    }
    return initial;
  }

  envkit::Result<Buyer> buyer() override {
    auto shared = std::make_shared<envkit::HttpConnection>(connection_);
    return Buyer([this, shared](Operation& op) {
      envkit::HttpRequest req;
      req.method = "POST";
      req.url = base_ + "/" + op.id + "/buy";
      req.body = "{}";
      req.headers.emplace_back("Content-Type", "application/json");
      req.timeout = timeout_;
      auto r = shared->perform(req);
      if (!r) {
        classify_transport_failure(r.error(), op);
        return false;
      }
      op.status = static_cast<int>(r->status);
      op.outcome = r->status / 100 == 2 ? Outcome::ok : r->status / 100 == 4 ? Outcome::fail : Outcome::unknown;
      if (op.outcome != Outcome::ok) op.error = r->body.substr(0, r->body.find('\n'));
      return true;
    });
  }

  envkit::Result<Snapshot> read() override {
    envkit::HttpConnection client(connection_);
    Snapshot snap;
    snap.source = base_;
    snap.invoke = now_us();
    envkit::HttpRequest req;
    req.url = base_;
    req.timeout = timeout_;
    auto r = client.perform(req);
    if (!r) return r.error().context("reading back " + base_);
    auto doc = envkit::parse_json(r->body);
    if (r->status != 200 || !doc || !doc->IsObject()) {
      return Error{Exit::data, "reading back " + base_ + ": not a JSON object of stock counts"};
    }
    for (const auto& m : doc->GetObject()) {
      if (m.value.IsInt64()) snap.stock[m.name.GetString()] = m.value.GetInt64();
    }
    snap.complete = now_us();
    return snap;
  }

 private:
  std::string base_;
  envkit::ConnectionOptions connection_;
  std::chrono::milliseconds timeout_;
};

class MysqlStock : public StockTarget {
 public:
  MysqlStock(envkit::Url url, envkit::ConnectionOptions connection, std::string table, bool racy,
             std::chrono::milliseconds window)
      : url_(std::move(url)), connection_(std::move(connection)), table_(envkit::quote_identifier(table)),
        racy_(racy), window_(window) {}

  envkit::Result<std::map<std::string, int64_t>> set_up(uint64_t items, uint64_t stock) override {
    auto db = envkit::MysqlConnection::connect(url_, connection_);
    if (!db) return db.error();
    if (auto st = db->execute("CREATE TABLE IF NOT EXISTS " + table_ +
                              " (item VARCHAR(64) PRIMARY KEY, stock BIGINT NOT NULL)");
        !st) {
      return st.error();
    }
    std::map<std::string, int64_t> initial;
    for (uint64_t i = 0; i < items; ++i) {
      if (auto st = db->execute("REPLACE INTO " + table_ + " (item, stock) VALUES (" +
                                db->quote_string(item_name(i)) + ", " + std::to_string(stock) + ")");
          !st) {
        return st.error();
      }
      initial[item_name(i)] = static_cast<int64_t>(stock);
    }
    return initial;
  }

  envkit::Result<Buyer> buyer() override {
    auto db = envkit::MysqlConnection::connect(url_, connection_);
    if (!db) return db.error();
    auto shared = std::make_shared<envkit::MysqlConnection>(std::move(*db));
    return Buyer([this, shared](Operation& op) { return racy_ ? buy_racy(*shared, op) : buy_atomic(*shared, op); });
  }

  envkit::Result<Snapshot> read() override {
    auto db = envkit::MysqlConnection::connect(url_, connection_);
    if (!db) return db.error();
    Snapshot snap;
    snap.source = url_.redacted();
    snap.invoke = now_us();
    auto rows = db->query("SELECT item, stock FROM " + table_);
    if (!rows) return rows.error();
    for (;;) {
      auto more = rows->next_row();
      if (!more) return more.error();
      if (!*more) break;
      snap.stock[std::string(*rows->value(0))] = std::stoll(std::string(*rows->value(1)));
    }
    snap.complete = now_us();
    return snap;
  }

 private:
  // The correct sale: one statement that decrements only stock that is there.
  bool buy_atomic(envkit::MysqlConnection& db, Operation& op) {
    auto n = db.execute_affected("UPDATE " + table_ + " SET stock = stock - 1 WHERE item = " +
                                 db.quote_string(op.id) + " AND stock > 0");
    if (!n) {
      classify_transport_failure(n.error(), op);
      return false;
    }
    op.outcome = *n == 1 ? Outcome::ok : Outcome::fail;
    if (*n != 1) op.error = "sold out";
    return true;
  }

  // The racy sale: read, decide, write back what was read minus one.
  bool buy_racy(envkit::MysqlConnection& db, Operation& op) {
    int64_t seen;
    {  // the result must be gone before the next statement on this connection
      auto rows = db.query("SELECT stock FROM " + table_ + " WHERE item = " + db.quote_string(op.id));
      if (!rows) {
        classify_transport_failure(rows.error(), op);
        return false;
      }
      auto more = rows->next_row();
      if (!more || !*more || !rows->value(0)) {
        op.outcome = Outcome::fail;
        op.error = "no such item";
        return true;
      }
      seen = std::stoll(std::string(*rows->value(0)));
    }
    if (seen <= 0) {
      op.outcome = Outcome::fail;
      op.error = "sold out";
      return true;
    }
    std::this_thread::sleep_for(window_);
    auto st = db.execute("UPDATE " + table_ + " SET stock = " + std::to_string(seen - 1) +
                         " WHERE item = " + db.quote_string(op.id));
    if (!st) {
      classify_transport_failure(st.error(), op);  // the write may have landed
      if (op.outcome == Outcome::fail) op.outcome = Outcome::unknown;
      return false;
    }
    op.outcome = Outcome::ok;
    return true;
  }

  envkit::Url url_;
  envkit::ConnectionOptions connection_;
  std::string table_;
  bool racy_;
  std::chrono::milliseconds window_;
};

}  // namespace

envkit::Result<std::unique_ptr<StockTarget>> open_stock_target(const Config& config) {
  const auto& p = config.probe;
  auto url = envkit::parse_url(p.target);
  if (!url) return url.error();
  if (url->scheme == "http" || url->scheme == "https") {
    return std::unique_ptr<StockTarget>(
        std::make_unique<HttpStock>(p.target, config.connection, p.request_timeout.value));
  }
  if (url->scheme == "mysql") {
    if (auto st = envkit::resolve_password(*url, {config.password_file, true}); !st) return st.error();
    std::string table = url->param("table").value_or("stock");
    std::string buy = url->param("buy").value_or("atomic");
    if (buy != "atomic" && buy != "racy") {
      return Error{Exit::usage, url->redacted() + ": buy= is atomic or racy"};
    }
    std::chrono::milliseconds window{10};
    if (auto w = url->param("window")) {
      auto parsed = envkit::parse_duration(*w);
      if (!parsed) return parsed.error().context(url->redacted() + ": window=");
      window = *parsed;
    }
    return std::unique_ptr<StockTarget>(
        std::make_unique<MysqlStock>(*url, config.connection, table, buy == "racy", window));
  }
  return Error{Exit::usage, "--target " + url->redacted() + ": stock is bought over http(s):// or mysql://"};
}

}  // namespace race_probe
