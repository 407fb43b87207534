      * SO-COLL-REQ: one direct debit of a utility's standing order
      * (SO01: debit the payer's account under the mandate, credit the
      * utility's collection account).  EBCDIC cp037.
       01  SO-COLL-REQ.
           05  TXN-CODE          PIC X(4).
           05  UTILITY-ID        PIC X(8).
           05  MANDATE-REF       PIC X(35).
           05  DUE-DATE          PIC 9(8).
           05  CREDITOR-ACCT     PIC X(20).
           05  DEBTOR-IBAN       PIC X(34).
           05  DEBTOR-NAME       PIC X(35).
           05  AMOUNT            PIC S9(13)V99 COMP-3.
           05  CURRENCY          PIC X(3).
           05  BILL-REF          PIC X(20).
