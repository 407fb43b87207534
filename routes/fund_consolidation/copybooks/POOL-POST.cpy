      * POOL-POST: the internal leg of a downward cash-pool sweep whose
      * header account is held at this bank (FC01 D): FP01 debits the
      * header account for the cover the bank pays the member's bank by
      * MT103; FP02 reverses that debit (ORIG-HOST-REF: the FP01's host
      * reference) when the MT103 cannot be sent.  The mainframe books the
      * other side to its outgoing-payments account.  Answered MF-RSP.
      * EBCDIC cp037, 2-byte big-endian length prefix.
       01  POOL-POST.
           05  TXN-CODE          PIC X(4).
           05  TRACE-NO          PIC X(16).
           05  ORIG-HOST-REF     PIC X(28).
           05  POOL-ID           PIC X(8).
           05  DEBIT-ACCT        PIC X(34).
           05  CREDIT-BANK       PIC X(11).
           05  AMOUNT            PIC S9(13)V99 COMP-3.
           05  CURRENCY          PIC X(3).
           05  VALUE-DATE        PIC 9(8).
           05  NARRATIVE         PIC X(40).
