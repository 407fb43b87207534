      * REMIT-REQ: outgoing customer remittance from the core mainframe.
      *   RD01 domestic (CNAPS-style clearing, JSON)
      *   RX01 cross-border over SWIFT FIN (MT103)
      *   RX02 cross-border over SWIFT MX / CBPR+ (pacs.008)
       01  REMIT-REQ.
           05  TXN-CODE          PIC X(4).
           05  TRACE-NO          PIC X(16).
           05  DEBTOR-ACCT       PIC X(34).
           05  DEBTOR-NAME       PIC X(35).
           05  CREDITOR-ACCT     PIC X(34).
           05  CREDITOR-NAME     PIC X(35).
           05  CREDITOR-BANK     PIC X(12).
           05  AMOUNT            PIC S9(13)V99 COMP-3.
           05  CURRENCY          PIC X(3).
           05  VALUE-DATE        PIC 9(8).
           05  CHARGES           PIC X(3).
           05  PURPOSE           PIC X(35).
