      * SALES-REQ: a wealth product sold at a branch (SL01).  EBCDIC cp037.
       01  SALES-REQ.
           05  TXN-CODE          PIC X(4).
           05  TRACE-NO          PIC X(16).
           05  PRODUCT           PIC X(8).
           05  CUST-ACCT         PIC X(20).
           05  CUST-RISK         PIC 9(1).
           05  AMOUNT            PIC S9(13)V99 COMP-3.
           05  CURRENCY          PIC X(3).
           05  SALES-REP         PIC X(8).
           05  BRANCH            PIC X(6).
