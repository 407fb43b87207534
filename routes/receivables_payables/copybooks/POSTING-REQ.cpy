      * POSTING-REQ: one AR collection (RP01, debit the payer, credit the
      * corporate) or AP payment (RP02, debit the corporate, pay the
      * supplier) from a corporate's batch file, or the enquiry for the
      * open invoice an AR collection is matched to (RP03: answered
      * MF-RSP, AMOUNT the invoice's open amount, RESP-CODE 25 when the
      * corporate has no open invoice INVOICE-REF).  EBCDIC cp037.
       01  POSTING-REQ.
           05  TXN-CODE          PIC X(4).
           05  TRACE-NO          PIC X(24).
           05  CORP-ACCT         PIC X(20).
           05  OTHER-ACCT        PIC X(34).
           05  OTHER-NAME        PIC X(35).
           05  AMOUNT            PIC S9(13)V99 COMP-3.
           05  CURRENCY          PIC X(3).
           05  DUE-DATE          PIC 9(8).
           05  INVOICE-REF       PIC X(35).
