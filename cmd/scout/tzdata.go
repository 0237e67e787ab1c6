package main

// Embed the time zone database: the distroless image has no
// /usr/share/zoneinfo, and the charging plan is computed in Europe/Warsaw.
import _ "time/tzdata"
