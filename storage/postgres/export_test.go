package postgres

// MigrateFS lets the external tests run the migrator over a migration set of their own.
var MigrateFS = migrate

// HistoryQuery returns the statement and arguments History runs, for tests that explain it.
var HistoryQuery = (*UsageStore).historyQuery
