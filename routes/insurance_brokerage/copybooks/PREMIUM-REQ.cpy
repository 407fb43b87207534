      * PREMIUM-REQ: collect an insurance premium from a customer's account
      * on behalf of an insurer (IP01).  EBCDIC cp037.
       01  PREMIUM-REQ.
           05  TXN-CODE          PIC X(4).
           05  TRACE-NO          PIC X(16).
           05  POLICY-NO         PIC X(20).
           05  INSURER           PIC X(4).
           05  PAYER-ACCT        PIC X(20).
           05  PAYER-NAME        PIC X(30).
           05  PREMIUM           PIC S9(11)V99 COMP-3.
           05  CURRENCY          PIC X(3).
           05  DUE-DATE          PIC 9(8).
           05  INSTALMENT        PIC 9(3).
