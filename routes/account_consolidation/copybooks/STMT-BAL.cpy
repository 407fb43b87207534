      * STMT-BAL: a closing balance gathered from another bank's statement,
      * posted to the mainframe's consolidated position (AC01).  cp037.
       01  STMT-BAL.
           05  TXN-CODE          PIC X(4).
           05  TRACE-NO          PIC X(35).
           05  ACCOUNT           PIC X(34).
           05  GROUP-ID          PIC X(8).
           05  SOURCE            PIC X(8).
           05  BALANCE           PIC S9(15)V99 COMP-3.
           05  CURRENCY          PIC X(3).
           05  BALANCE-DATE      PIC 9(8).
