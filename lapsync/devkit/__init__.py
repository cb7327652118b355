"""Development kit shared by tests/ and bench/: never imported by either app.

faultproxy  a fault-injecting HTTP proxy on loopback
postgres    an embedded PostgreSQL, databases, snapshots of central's tables
processes   central and the laptop app as real processes; free ports; /proc figures
laptops     a laptop database file, helpers posting laps over real HTTP
browser     an app served on loopback, Debian's headless Chromium
lappage     a helper typing fast on the lap page: plan, slow server, audit
fuzz        the schemathesis settings of the API fuzz test and its long run
"""
