#include "libs/sqlite/database.h"

#include <cstdlib>
#include <string>

#include "gtest/gtest.h"

namespace cnet::sqlite {
namespace {

std::string TempDbPath() {
  std::string tmpl = std::string(::testing::TempDir()) + "/dbtestXXXXXX";
  char* dir = mkdtemp(tmpl.data());
  EXPECT_NE(dir, nullptr);
  return std::string(dir) + "/sub/test.db";
}

const std::vector<std::string> kMigrations = {
    "CREATE TABLE kv (k TEXT PRIMARY KEY, v TEXT NOT NULL);",
    "ALTER TABLE kv ADD COLUMN n INTEGER NOT NULL DEFAULT 0;",
};

TEST(DatabaseTest, OpensInWalModeAndCreatesParentDirectory) {
  auto db = Database::Open({TempDbPath()});
  ASSERT_TRUE(db.ok()) << db.status();
  auto q = (*db)->Prepare("PRAGMA journal_mode");
  ASSERT_TRUE(q.ok());
  ASSERT_TRUE(*q->Step());
  EXPECT_EQ(q->ColumnText(0), "wal");
}

TEST(DatabaseTest, MigrationsApplyOnceAndRecordTheVersion) {
  std::string path = TempDbPath();
  {
    auto db = Database::Open({path});
    ASSERT_TRUE(db.ok());
    ASSERT_TRUE((*db)->Migrate({kMigrations[0]}).ok());
    EXPECT_EQ(*(*db)->SchemaVersion(), 1);
  }
  auto db = Database::Open({path});
  ASSERT_TRUE(db.ok());
  ASSERT_TRUE((*db)->Migrate(kMigrations).ok());
  EXPECT_EQ(*(*db)->SchemaVersion(), 2);
  ASSERT_TRUE((*db)->Migrate(kMigrations).ok());  // idempotent
  EXPECT_EQ(*(*db)->SchemaVersion(), 2);
  EXPECT_TRUE((*db)->Exec("INSERT INTO kv (k, v, n) VALUES ('a', 'b', 1)").ok());
}

TEST(DatabaseTest, NewerSchemaThanBinaryIsRefused) {
  std::string path = TempDbPath();
  auto db = Database::Open({path});
  ASSERT_TRUE((*db)->Migrate(kMigrations).ok());
  absl::Status s = (*db)->Migrate({kMigrations[0]});
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(s.message().find("schema version 2"), std::string::npos) << s;
}

TEST(DatabaseTest, FailedMigrationChangesNothing) {
  auto db = Database::Open({TempDbPath()});
  ASSERT_TRUE((*db)->Migrate({kMigrations[0]}).ok());
  absl::Status s = (*db)->Migrate({kMigrations[0], "CREATE TABLE t (x); SYNTAX ERROR;"});
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("migration 2"), std::string::npos) << s;
  EXPECT_EQ(*(*db)->SchemaVersion(), 1);
  // Table t of the failed migration was rolled back with it.
  EXPECT_FALSE((*db)->Exec("INSERT INTO t VALUES (1)").ok());
}

TEST(DatabaseTest, TransactionRollsBackUnlessCommitted) {
  auto db = Database::Open({TempDbPath()});
  ASSERT_TRUE((*db)->Migrate(kMigrations).ok());
  {
    Transaction tx(db->get());
    ASSERT_TRUE(tx.status().ok());
    ASSERT_TRUE((*db)->Exec("INSERT INTO kv (k, v) VALUES ('lost', 'x')").ok());
  }
  {
    Transaction tx(db->get());
    ASSERT_TRUE((*db)->Exec("INSERT INTO kv (k, v) VALUES ('kept', 'y')").ok());
    ASSERT_TRUE(tx.Commit().ok());
  }
  auto q = (*db)->Prepare("SELECT k FROM kv ORDER BY k");
  std::vector<std::string> keys;
  while (*q->Step()) keys.push_back(q->ColumnText(0));
  EXPECT_EQ(keys, std::vector<std::string>{"kept"});
}

TEST(DatabaseTest, PreparedStatementsBindAndReadEveryType) {
  auto db = Database::Open({TempDbPath()});
  ASSERT_TRUE((*db)->Exec("CREATE TABLE t (i INTEGER, d REAL, s TEXT, b BLOB, z)").ok());
  auto ins = (*db)->Cached("INSERT INTO t VALUES (?, ?, ?, ?, ?)");
  ASSERT_TRUE(ins.ok());
  std::string blob("a\0b", 3);
  ASSERT_TRUE((*ins)->Bind(1, int64_t{1} << 40).Bind(2, 2.5).Bind(3, "text")
                  .BindBlob(4, blob).BindNull(5).Run().ok());
  auto again = (*db)->Cached("INSERT INTO t VALUES (?, ?, ?, ?, ?)");
  ASSERT_EQ(*again, *ins);  // same cached statement, reset
  ASSERT_TRUE((*again)->Bind(1, 7).Bind(2, 0.0).Bind(3, "x").BindBlob(4, "").BindNull(5).Run().ok());
  auto q = (*db)->Prepare("SELECT i, d, s, b, z FROM t ORDER BY i DESC");
  ASSERT_TRUE(*q->Step());
  EXPECT_EQ(q->ColumnInt(0), int64_t{1} << 40);
  EXPECT_DOUBLE_EQ(q->ColumnDouble(1), 2.5);
  EXPECT_EQ(q->ColumnText(2), "text");
  EXPECT_EQ(q->ColumnText(3), blob);
  EXPECT_TRUE(q->ColumnIsNull(4));
  ASSERT_TRUE(*q->Step());
  EXPECT_FALSE(*q->Step());
}

TEST(DatabaseTest, ConstraintViolationIsAlreadyExistsAndNamesTheStatement) {
  auto db = Database::Open({TempDbPath()});
  ASSERT_TRUE((*db)->Migrate(kMigrations).ok());
  auto ins = (*db)->Prepare("INSERT INTO kv (k, v) VALUES (?, ?)");
  ASSERT_TRUE(ins->Bind(1, "a").Bind(2, "1").Run().ok());
  ins->Reset();
  absl::Status s = ins->Bind(1, "a").Bind(2, "2").Run();
  EXPECT_EQ(s.code(), absl::StatusCode::kAlreadyExists);
  EXPECT_NE(s.message().find("INSERT INTO kv"), std::string::npos) << s;
}

TEST(DatabaseTest, IntegrityCheckPassesOnAHealthyFile) {
  auto db = Database::Open({TempDbPath()});
  ASSERT_TRUE((*db)->Migrate(kMigrations).ok());
  EXPECT_TRUE((*db)->IntegrityCheck().ok());
}

TEST(DatabaseTest, OpenFailsClearlyOnAnUnusablePath) {
  auto db = Database::Open({"/proc/definitely/not/here.db"});
  ASSERT_FALSE(db.ok());
  EXPECT_EQ(db.status().code(), absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace cnet::sqlite
