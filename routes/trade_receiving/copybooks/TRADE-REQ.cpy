      * TRADE-REQ: trade settlement under a documentary credit (LC) or a
      * documentary collection (DC).  TI01 import payment, TE01 export
      * proceeds received.  EBCDIC cp037.
       01  TRADE-REQ.
           05  TXN-CODE          PIC X(4).
           05  TRACE-NO          PIC X(16).
           05  DOC-REF           PIC X(16).
           05  CUST-ACCT         PIC X(20).
           05  COUNTER-BANK      PIC X(11).
           05  AMOUNT            PIC S9(13)V99 COMP-3.
           05  CURRENCY          PIC X(3).
           05  VALUE-DATE        PIC 9(8).
           05  DOCS-CONFORM      PIC X(1).
               88  CONFORMING    VALUE 'Y'.
