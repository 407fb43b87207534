      * CLMPAY-REQ: a debit of the insurer's settlement account for a
      * claim payout (CP01), or its reversal (CP02) when the beneficiary's
      * credit failed. EBCDIC cp037, 2-byte big-endian length prefix.
       01  CLMPAY-REQ.
           05  TXN-CODE          PIC X(4).
           05  TRACE-NO          PIC X(16).
           05  ORIG-HOST-REF     PIC X(28).
           05  SETTLE-ACCT       PIC X(20).
           05  AMOUNT            PIC S9(13)V99 COMP-3.
           05  CURRENCY          PIC X(3).
           05  VALUE-DATE        PIC 9(8).
           05  NARRATIVE         PIC X(40).
