package postgres

// MigrateFS lets the external tests run the migrator over a migration set of their own.
var MigrateFS = migrate
