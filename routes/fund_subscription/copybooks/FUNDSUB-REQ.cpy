      * FUNDSUB-REQ: a fund subscription the bank settles itself (SS01):
      * bsp debits the investor's settlement account at the core account
      * system, then places the subscription with the fund company.
      * EBCDIC cp037, 2-byte big-endian length prefix on the wire.
       01  FUNDSUB-REQ.
           05  TXN-CODE          PIC X(4).
           05  TRACE-NO          PIC X(16).
           05  SETTLE-ACCT       PIC X(20).
           05  FUND-CODE         PIC X(6).
           05  AMOUNT            PIC S9(13)V99 COMP-3.
           05  CURRENCY          PIC X(3).
           05  TRADE-DATE        PIC 9(8).
