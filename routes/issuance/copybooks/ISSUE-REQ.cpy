      * ISSUE-REQ: a customer's subscription to a bond issue in its
      * offering period (IS01).  EBCDIC cp037.
       01  ISSUE-REQ.
           05  TXN-CODE          PIC X(4).
           05  TRACE-NO          PIC X(16).
           05  ISIN              PIC X(12).
           05  INVESTOR-ACCT     PIC X(20).
           05  QUANTITY          PIC 9(9) COMP.
           05  PRICE             PIC S9(5)V9(4) COMP-3.
           05  AMOUNT            PIC S9(13)V99 COMP-3.
           05  CURRENCY          PIC X(3).
           05  SUB-DATE          PIC 9(8).
