      * FUNDTXN-REQ: fund subscription (FS01), redemption (FR01), switch
      * (FW01: FUND-CODE's UNITS into the fund TO-FUND) and the cancel of
      * any of them before its cut-off (FX01), and the dividend of a
      * holding paid in cash (FD01) or reinvested (FD02: UNITS held,
      * AMOUNT the dividend, TRADE-DATE its ex-date), sent by the core
      * banking mainframe.  EBCDIC cp037.  A switch has no amount:
      * TO-FUND takes the bytes of AMOUNT (REDEFINES), so the record
      * keeps its length.
       01  FUNDTXN-REQ.
           05  TXN-CODE          PIC X(4).
               88  SUBSCRIPTION  VALUE 'FS01'.
               88  REDEMPTION    VALUE 'FR01'.
               88  SWITCH        VALUE 'FW01'.
               88  CANCELLATION  VALUE 'FX01'.
               88  DIVIDEND-CASH VALUE 'FD01'.
               88  DIVIDEND-REIN VALUE 'FD02'.
           05  TRACE-NO          PIC X(16).
           05  CUST-ACCT         PIC X(20).
           05  FUND-CODE         PIC X(6).
           05  AMOUNT            PIC S9(13)V99 COMP-3.
           05  TO-FUND           REDEFINES AMOUNT PIC X(8).
           05  UNITS             PIC S9(11)V9(4) COMP-3.
           05  CURRENCY          PIC X(3).
           05  TRADE-DATE        PIC 9(8).
           05  SALES-CHANNEL     PIC X(2).
