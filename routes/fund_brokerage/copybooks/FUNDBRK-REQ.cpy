      * FUNDBRK-REQ: an order the bank places, as distributor, with a
      * third-party fund company (FB01 buy, FB02 sell).  EBCDIC cp037.
       01  FUNDBRK-REQ.
           05  TXN-CODE          PIC X(4).
           05  TRACE-NO          PIC X(16).
           05  CUST-ACCT         PIC X(20).
           05  FUND-CO           PIC X(4).
           05  FUND-CODE         PIC X(6).
           05  AMOUNT            PIC S9(13)V99 COMP-3.
           05  CURRENCY          PIC X(3).
           05  FEE-RATE          PIC S9V9(4) COMP-3.
           05  ORDER-DATE        PIC 9(8).
