      * SWEEP-REQ: a cash-pooling sweep between a member account held at
      * another bank and the pool's header account (FC01).  EBCDIC cp037.
       01  SWEEP-REQ.
           05  TXN-CODE          PIC X(4).
           05  TRACE-NO          PIC X(16).
           05  POOL-ID           PIC X(8).
           05  MEMBER-ACCT       PIC X(34).
           05  MEMBER-BANK       PIC X(11).
           05  DIRECTION         PIC X(1).
               88  SWEEP-UP      VALUE 'U'.
               88  SWEEP-DOWN    VALUE 'D'.
           05  AMOUNT            PIC S9(13)V99 COMP-3.
           05  CURRENCY          PIC X(3).
           05  VALUE-DATE        PIC 9(8).
