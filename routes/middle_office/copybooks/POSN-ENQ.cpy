      * POSN-ENQ: limit / position enquiry to the mainframe (MO01).  cp037.
      * The answer (MF-RSP) carries the used amount in AMOUNT.
       01  POSN-ENQ.
           05  TXN-CODE          PIC X(4).
           05  TRACE-NO          PIC X(16).
           05  LIMIT-ID          PIC X(12).
           05  CURRENCY          PIC X(3).
