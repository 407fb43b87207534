      * CUST-ENQ: customer service enquiries to the mainframe.  cp037.
      *   CS01 balance enquiry: MF-RSP AMOUNT is the available balance
      *   CS02 deal enquiry:    MF-RSP HOST-REF / MESSAGE-TEXT give its status
       01  CUST-ENQ.
           05  TXN-CODE          PIC X(4).
           05  TRACE-NO          PIC X(16).
           05  ACCOUNT           PIC X(20).
           05  DEAL-REF          PIC X(16).
           05  CURRENCY          PIC X(3).
