      * BRKXFER-REQ: bank-securities transfer posted to the customer's bank
      * account (BK01 bank to broker, BK02 broker to bank).  cp037.
       01  BRKXFER-REQ.
           05  TXN-CODE          PIC X(4).
           05  TRACE-NO          PIC X(16).
           05  BROKER-ID         PIC X(6).
           05  BANK-ACCT         PIC X(20).
           05  SEC-ACCT          PIC X(16).
           05  AMOUNT            PIC S9(13)V99 COMP-3.
           05  CURRENCY          PIC X(3).
