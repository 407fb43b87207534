      * CD-REQ: a customs duty payment (CD01): debit the importer's
      * account and pay the duty to the customs' treasury account.
      * EBCDIC (cp037), 2-byte big-endian length prefix on the wire.
       01  CD-REQ.
           05  TXN-CODE          PIC X(4).
           05  TRACE-NO          PIC X(16).
           05  DECL-NO           PIC X(18).
           05  TAX-TYPE          PIC X(1).
           05  CUSTOMS-CODE      PIC X(4).
           05  PAYER-ACCT        PIC X(20).
           05  PAYER-NAME        PIC X(35).
           05  AMOUNT            PIC S9(13)V99 COMP-3.
           05  CURRENCY          PIC X(3).
           05  DUE-DATE          PIC 9(8).
